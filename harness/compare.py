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
COMPARE_CHUNK = 1 << 24  # elements widened to float64 at a time


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


def compare_tensor(got: torch.Tensor, expected: torch.Tensor, special: bool = False,
                   masked_nan: bool = False) -> Comparison:
    """special: the inputs held NaN/inf on purpose. Every NaN and inf of the reference must then be
    reproduced (a kernel must not swallow them), but where the reference stays finite and the
    candidate does not (e.g. a NaN key under a causal mask, which torch's kernel never reads) the
    element is counted in extra_nonfinite and left out of the comparison, not failed.
    masked_nan: also leave out (and count) NaN of the reference that the candidate does not have:
    attention whose masked scores meet a NaN value propagates it in torch's math path (0 * NaN)
    but not in kernels that skip masked blocks, as torch's own fused kernels do."""
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
    stats = _chunk_stats([(got, expected, 0)], tol, special, masked_nan)
    return verdict_of(stats, expected.shape, expected.dtype)


def compare_pieces(pieces, shape: torch.Size, dtype: torch.dtype) -> Comparison:
    """compare_tensor over a tensor that is never whole: `pieces` yields (got, expected, flat offset)
    chunks covering it (a float64 evaluation computed slice by slice)."""
    return verdict_of(_chunk_stats(pieces, tolerance_for(dtype)), shape, dtype)


def _chunk_stats(pieces, tol, special: bool = False, masked_nan: bool = False) -> "_ChunkStats":
    """The statistics of (got, expected, flat offset) pieces, COMPARE_CHUNK elements at a time."""
    stats = _ChunkStats()
    for got, expected, begin in pieces:
        flat_got, flat_expected = got.detach().reshape(-1), expected.detach().reshape(-1)
        for start in range(0, flat_expected.numel(), COMPARE_CHUNK):
            stats.add(flat_got[start:start + COMPARE_CHUNK], flat_expected[start:start + COMPARE_CHUNK],
                      begin + start, tol, special, masked_nan)
    return stats


def agrees_to_scale(got: torch.Tensor, expected: torch.Tensor, factor: float) -> bool:
    """Whether `got` is `expected` up to `factor` times its dtype's scale tolerance of expected's
    largest value, NaN and inf in the same places: the output-scale rule alone, without the
    elementwise one (which two roundings of a long sum can miss near zero)."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False
    if not (expected.dtype.is_floating_point or expected.dtype.is_complex):
        return bool(torch.equal(got, expected))
    tol = tolerance_for(expected.dtype)
    stats = _chunk_stats([(got, expected, 0)], tol)
    if stats.extra_nan or stats.missing_nan or stats.inf_mismatch:
        return False
    return stats.max_abs <= tol.atol + factor * tol.scale * stats.scale


def verdict_of(stats, shape: torch.Size, dtype: torch.dtype) -> Comparison:
    """The comparison of a floating-point tensor of `shape` from its chunks' statistics."""
    tol = tolerance_for(dtype)
    numel = shape.numel()
    if stats.extra_nan or stats.missing_nan:
        return Comparison(False, f"NaN positions differ ({stats.extra_nan} unexpected NaN, {stats.missing_nan} "
                                 "missing NaN)", max_abs_err=float("nan"), max_rel_err=float("nan"),
                          unwritten=stats.extra_nan > 0)
    if stats.inf_mismatch:
        return Comparison(False, "Inf positions or signs differ", max_abs_err=float("inf"), max_rel_err=float("inf"))
    if 2 * stats.extra_nonfinite > numel:
        return Comparison(False, f"{stats.extra_nonfinite}/{numel} elements are NaN/inf where the "
                                 "reference's are finite", unwritten=True)
    if not stats.any_finite:
        return Comparison(True, extra_nonfinite=stats.extra_nonfinite)
    scale, max_abs = stats.scale, stats.max_abs
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    where = (f"worst at index {_describe_index(stats.worst, shape)}: got {stats.worst_got:.6g}, "
             f"expected {stats.worst_expected:.6g}")
    if stats.outside:
        return Comparison(False, f"{stats.outside}/{numel} elements outside tolerance "
                                 f"(atol {tol.atol:g}, rtol {tol.rtol:g} for {dtype}); {where}",
                          max_abs, max_rel)
    if max_rel > tol.scale:
        return Comparison(False, f"error {max_abs:.3g} is {max_rel:.3g} of the output's scale {scale:.3g} "
                                 f"(limit {tol.scale:g} for {dtype}); {where}", max_abs, max_rel)
    return Comparison(True, max_abs_err=max_abs, max_rel_err=max_rel, extra_nonfinite=stats.extra_nonfinite)


class _ChunkStats:
    """What compare_tensor needs, gathered chunk by chunk so a multi-GB output never has a
    full-size float64 copy (at most COMPARE_CHUNK elements are widened at a time)."""

    def __init__(self):
        self.extra_nan = self.missing_nan = self.extra_nonfinite = self.outside = 0
        self.inf_mismatch = self.any_finite = False
        self.scale = self.max_abs = 0.0
        self.worst, self.worst_got, self.worst_expected = 0, 0.0, 0.0

    def add(self, got, expected, offset: int, tol: Tolerance, special: bool, masked_nan: bool) -> None:
        wide = torch.complex128 if expected.is_complex() else torch.float64
        got, expected = got.to(wide), expected.to(wide)
        if masked_nan:
            swallowed = torch.isnan(expected) & ~torch.isnan(got)
            count = int(swallowed.sum())
            if count:
                self.extra_nonfinite += count
                expected = torch.where(swallowed, got, expected)
        if special:
            extra = ~torch.isfinite(got) & torch.isfinite(expected)
            count = int(extra.sum())
            if count:
                self.extra_nonfinite += count
                got = torch.where(extra, expected, got)
        got_nan, expected_nan = torch.isnan(got), torch.isnan(expected)
        self.extra_nan += int((got_nan & ~expected_nan).sum())
        self.missing_nan += int((expected_nan & ~got_nan).sum())
        got_inf, expected_inf = torch.isinf(got), torch.isinf(expected)
        if not torch.equal(got_inf, expected_inf) or not torch.equal(got[got_inf], expected[expected_inf]):
            self.inf_mismatch = True
        finite = ~(expected_nan | expected_inf | got_nan | got_inf)
        if not bool(finite.any()):
            return
        self.any_finite = True
        error = (got - expected).abs().masked_fill(~finite, 0)
        magnitude = expected.abs().masked_fill(~finite, 0)
        self.scale = max(self.scale, float(magnitude.max()))
        self.outside += int((error > tol.atol + tol.rtol * magnitude).sum())
        worst = int(error.argmax())
        if float(error[worst]) > self.max_abs or offset == 0:
            self.max_abs = max(self.max_abs, float(error[worst]))
            self.worst = offset + worst
            self.worst_got, self.worst_expected = got[worst].real.item(), expected[worst].real.item()


def compare_outputs(got, expected, special: bool = False, masked_nan: bool = False) -> tuple[Comparison, int]:
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
            result = compare_tensor(g, e, special, masked_nan)
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
