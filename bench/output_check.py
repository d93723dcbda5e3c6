"""Whether a kernel's outputs agree with the reference, by the judge's rule.

The independent timing script (bench/do_bench_check.py) must call an output wrong exactly when the
harness would: the per-dtype tolerances of `harness.compare` (fp32: 1e-4), and, where those fail,
a float64 evaluation of the reference as a second opinion. A reference rounds too: torch's fp32
cumsum on a GPU carries its running total in fp32, so over 65536 terms it lands ~1e-3 from the
true prefix sums, and a kernel that accumulates in float64 is then "wrong" against it while being
the closer of the two. Such a kernel is right when it is no further from the float64 evaluation
than twice the reference's own worst error plus the tolerance (harness/judge.py,
`_as_exact_as_reference`); a kernel that is really wrong stays far outside that.
"""
from __future__ import annotations

import copy

import torch

from harness import compare

SLACK = 2.0  # a candidate may be this many times further from float64 than the reference is


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _chunks(*tensors: torch.Tensor):
    """The same flat slices of equally shaped tensors (no full-size float64 copy at once)."""
    flat = [t.detach().reshape(-1) for t in tensors]
    for begin in range(0, flat[0].numel(), compare.COMPARE_CHUNK):
        yield tuple(f[begin:begin + compare.COMPARE_CHUNK] for f in flat)


def float64_evaluation(reference: torch.nn.Module, inputs: list):
    """The reference run in float64 on float64 copies of the inputs: on their device, else (out of
    memory: two float64 copies of multi-GB tensors) on the host; None if it does not run so."""
    devices = [x.device for x in inputs if isinstance(x, torch.Tensor)][:1]
    for device in dict.fromkeys(devices + [torch.device("cpu")]):
        try:
            model = copy.deepcopy(reference).to(device).double()
            wide = [x.to(device).double() if isinstance(x, torch.Tensor) and x.is_floating_point()
                    else (x.to(device) if isinstance(x, torch.Tensor) else x) for x in inputs]
            with torch.no_grad():
                return model(*wide)
        except torch.OutOfMemoryError:
            model = wide = None
            torch.cuda.empty_cache()
        except Exception:
            return None
    return None


def as_exact_as_reference(got, expected, truth, slack: float = SLACK) -> bool:
    """Whether every output is no further from `truth` (the float64 evaluation) than `slack` times
    the reference's own worst error plus its dtype's tolerance."""
    got, expected, truth = _tensors(got), _tensors(expected), _tensors(truth)
    if not expected or not (len(got) == len(expected) == len(truth)):
        return False
    for candidate, reference, exact in zip(got, expected, truth):
        if (not reference.is_floating_point() or candidate.shape != reference.shape
                or candidate.dtype != reference.dtype or exact.shape != reference.shape):
            return False
        tolerance = compare.tolerance_for(reference.dtype)
        reference_error = 0.0
        for ref, true in _chunks(reference, exact):
            ref = ref.to(true.device).double()
            finite = torch.isfinite(true) & torch.isfinite(ref)
            if finite.any():
                reference_error = max(reference_error, float((ref - true).abs()[finite].max()))
        for cand, ref, true in _chunks(candidate, reference, exact):
            cand, ref = cand.to(true.device).double(), ref.to(true.device).double()
            finite = torch.isfinite(true)
            # not finite where the truth is not (or where the reference overflowed too)
            if bool(torch.isfinite(cand)[~finite].any()):
                return False
            measured = finite & torch.isfinite(cand)
            same = (torch.isnan(cand) & torch.isnan(ref)) | (cand == ref)
            if not bool((measured | same)[finite].all()):
                return False
            error = (cand - true).abs().masked_fill(~measured, 0)
            limit = slack * reference_error + tolerance.atol + tolerance.rtol * true.abs().masked_fill(~measured, 0)
            if not bool((error <= limit).all()):
                return False
    return True


def output_problem(got, expected, reference: torch.nn.Module, inputs: list) -> str | None:
    """None when `got` passes as the judge would pass it, else one sentence saying why not."""
    result, index = compare.compare_outputs(got, expected)
    if result.ok:
        return None
    truth = float64_evaluation(reference, inputs)
    if truth is not None and as_exact_as_reference(got, expected, truth):
        return None
    return f"output {index}: {result.problem}"
