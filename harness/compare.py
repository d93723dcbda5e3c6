"""Compare candidate outputs with reference outputs: per-dtype tolerances, checked elementwise and
against the output's scale, so a tiny output cannot pass as all zeros."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    atol: float   # elementwise: |got - expected| <= atol + rtol * |expected|
    rtol: float
    scale: float  # and max |got - expected| <= scale * max |expected|


EXACT = Tolerance(0.0, 0.0, 0.0)
TOLERANCES = {
    torch.float64: Tolerance(1e-7, 1e-7, 1e-7),
    torch.float32: Tolerance(1e-4, 1e-4, 1e-4),
    torch.float16: Tolerance(1e-2, 1e-2, 1e-2),
    torch.bfloat16: Tolerance(2e-2, 2e-2, 2e-2),
}
LOW_PRECISION_TOLERANCE = Tolerance(1e-1, 1e-1, 1e-1)  # float8 and friends


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    if dtype in TOLERANCES:
        return TOLERANCES[dtype]
    if dtype.is_floating_point:
        return LOW_PRECISION_TOLERANCE
    if dtype.is_complex:
        return TOLERANCES[torch.float32]
    return EXACT


@dataclass
class Comparison:
    ok: bool
    problem: str = ""             # one sentence, empty when ok
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0      # max abs error / output scale
    unwritten: bool = False       # NaN where the reference has none: elements the kernel never wrote
    extra_nonfinite: int = 0      # special-values trial: NaN/inf where the reference stays finite


def flatten(output) -> list:
    """Tensors (and other leaves) of a forward() result, in order."""
    if isinstance(output, (list, tuple)):
        return [leaf for item in output for leaf in flatten(item)]
    if isinstance(output, dict):
        return [leaf for key in sorted(output) for leaf in flatten(output[key])]
    return [output]


def _describe_index(flat_index: int, shape: torch.Size) -> str:
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return str(tuple(reversed(index)))


def compare_tensor(got: torch.Tensor, expected: torch.Tensor, special: bool = False) -> Comparison:
    """special: the inputs held NaN/inf on purpose. Every NaN and inf of the reference must then be
    reproduced (a kernel must not swallow them), but where the reference stays finite and the
    candidate does not (e.g. a NaN key under a causal mask, which torch's kernel never reads) the
    element is counted in extra_nonfinite and left out of the comparison, not failed."""
    if got.shape != expected.shape:
        return Comparison(False, f"shape {tuple(got.shape)} instead of {tuple(expected.shape)}")
    if got.dtype != expected.dtype:
        return Comparison(False, f"dtype {got.dtype} instead of {expected.dtype}")
    if got.device != expected.device:
        return Comparison(False, f"on device {got.device} instead of {expected.device}")
    tol = tolerance_for(expected.dtype)
    if not (expected.dtype.is_floating_point or expected.dtype.is_complex):
        wrong = got != expected
        count = int(wrong.sum())
        if count == 0:
            return Comparison(True)
        return Comparison(False, f"{count}/{expected.numel()} elements differ (integers must match exactly)",
                          max_abs_err=float((got.double() - expected.double()).abs().max()))
    got64, expected64 = got.detach().to(torch.complex128 if got.is_complex() else torch.float64), \
        expected.detach().to(torch.complex128 if expected.is_complex() else torch.float64)
    got_nan, expected_nan = torch.isnan(got64), torch.isnan(expected64)
    extra_nonfinite = 0
    if special:
        extra = ~torch.isfinite(got64) & torch.isfinite(expected64)
        extra_nonfinite = int(extra.sum())
        if extra_nonfinite:
            got64 = torch.where(extra, expected64, got64)
            got_nan = torch.isnan(got64)
    if not torch.equal(got_nan, expected_nan):
        extra = int((got_nan & ~expected_nan).sum())
        missing = int((expected_nan & ~got_nan).sum())
        return Comparison(False, f"NaN positions differ ({extra} unexpected NaN, {missing} missing NaN)",
                          max_abs_err=float("nan"), max_rel_err=float("nan"), unwritten=extra > 0)
    got_inf, expected_inf = torch.isinf(got64), torch.isinf(expected64)
    if not torch.equal(got_inf, expected_inf) or not torch.equal(got64[got_inf], expected64[expected_inf]):
        return Comparison(False, "Inf positions or signs differ",
                          max_abs_err=float("inf"), max_rel_err=float("inf"))
    finite = ~(expected_nan | expected_inf)
    if not bool(finite.any()):
        return Comparison(True)
    error = (got64 - expected64).abs().masked_fill(~finite, 0)
    magnitude = expected64.abs().masked_fill(~finite, 0)
    scale = float(magnitude.max())
    max_abs = float(error.max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    outside = error > tol.atol + tol.rtol * magnitude
    count = int(outside.sum())
    worst = int(error.flatten().argmax())
    where = (f"worst at index {_describe_index(worst, expected.shape)}: got {got64.flatten()[worst].item():.6g}, "
             f"expected {expected64.flatten()[worst].item():.6g}")
    if count:
        return Comparison(False, f"{count}/{expected.numel()} elements outside tolerance "
                                 f"(atol {tol.atol:g}, rtol {tol.rtol:g} for {expected.dtype}); {where}",
                          max_abs, max_rel)
    if max_rel > tol.scale:
        return Comparison(False, f"error {max_abs:.3g} is {max_rel:.3g} of the output's scale {scale:.3g} "
                                 f"(limit {tol.scale:g} for {expected.dtype}); {where}", max_abs, max_rel)
    return Comparison(True, max_abs_err=max_abs, max_rel_err=max_rel, extra_nonfinite=extra_nonfinite)


def compare_outputs(got, expected, special: bool = False) -> tuple[Comparison, int]:
    """Compare whole forward() results. Returns the first failing comparison (or the worst errors when
    all pass) and the index of the output it concerns."""
    got_leaves, expected_leaves = flatten(got), flatten(expected)
    if len(got_leaves) != len(expected_leaves):
        return Comparison(False, f"{len(got_leaves)} outputs instead of {len(expected_leaves)}"), 0
    worst = Comparison(True)
    for index, (g, e) in enumerate(zip(got_leaves, expected_leaves)):
        if isinstance(e, torch.Tensor):
            if not isinstance(g, torch.Tensor):
                return Comparison(False, f"a {type(g).__name__} instead of a tensor"), index
            result = compare_tensor(g, e, special)
        else:
            same = g == e if not isinstance(g, torch.Tensor) else False
            result = Comparison(bool(same), "" if same else f"value {g!r} instead of {e!r}")
        if not result.ok:
            return result, index
        worst = Comparison(True, max_abs_err=max(worst.max_abs_err, result.max_abs_err),
                           max_rel_err=max(worst.max_rel_err, result.max_rel_err),
                           extra_nonfinite=worst.extra_nonfinite + result.extra_nonfinite)
    return worst, 0


def same_outputs(first, second) -> bool:
    """Whether two results of the same candidate are indistinguishable (used by the ghost replay)."""
    return compare_outputs(first, second)[0].ok


def tensors_equal(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Bitwise-style equality that treats NaN == NaN (for 'inputs unchanged')."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    if first.dtype.is_floating_point or first.dtype.is_complex:
        return bool(torch.equal(torch.isnan(first), torch.isnan(second))) and \
            bool(torch.equal(torch.nan_to_num(first), torch.nan_to_num(second)))
    return bool(torch.equal(first, second))
