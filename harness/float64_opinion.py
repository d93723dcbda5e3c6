"""A second opinion before a mismatch is called: the reference evaluated in float64.

An output outside the reference's tolerance is not always wrong, because the reference rounds
too. Two questions are asked of a float64 evaluation of the reference: is the candidate as close
to it as the reference itself is (then the miss is the reference's rounding), and, on the scaled
and shifted inputs, does the reference resolve those inputs at all (if not, they cannot tell a
kernel's rounding from a bug, and the candidate gets more room there).
"""
from __future__ import annotations

import copy

import torch

from harness import compare
from harness.inputs import map_tensors
from harness.tensor_values import aligned_chunks, tensors


def float64_truth(judge, inputs, expected):
    """The reference evaluated in float64 (a copy of it, on float64 inputs); None when it
    does not run in float64. On a GPU without room for it (twice the inputs, plus outputs, at
    benchmark sizes), it is evaluated on the host instead. The last one is kept: one check asks
    up to three times about the same inputs."""
    if judge.last_float64_truth is not None and judge.last_float64_truth[0] is inputs:
        return judge.last_float64_truth[1]
    judge.last_float64_truth = None
    truth = _evaluate_in_float64(judge, inputs, expected)
    judge.last_float64_truth = (inputs, truth)
    return truth


def _as_float64(value, device):
    return map_tensors(value, lambda t: t.to(device).double() if t.is_floating_point() else t.to(device))


def _evaluate_in_float64(judge, inputs, expected):
    return evaluate_in_float64(judge.reference, inputs, expected, judge.device)


def _room(device) -> int:
    """Bytes a new allocation may take on `device`: free device memory plus this process's cache."""
    if torch.device(device).type != "cuda":
        return 1 << 62
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _float64_bytes(value) -> int:
    return sum(8 * t.numel() for t in tensors(value))


def evaluate_in_float64(reference, inputs, expected, device):
    """`reference` run in float64 on float64 copies of `inputs` (which gave `expected`), on `device`;
    None where it does not run so."""
    # Tried whole only where float64 inputs and outputs fit twice over: an attempt that runs out
    # of memory at benchmark sizes leaves the allocator's blocks fragmented for what follows.
    if 2 * (_float64_bytes(inputs) + _float64_bytes(expected)) < _room(device):
        try:
            reference64 = copy.deepcopy(reference).to(device).double()
            with torch.no_grad():
                return reference64(*_as_float64(inputs, device))
        except torch.OutOfMemoryError:
            pass
        except Exception:
            return None
        reference64 = None
        torch.cuda.empty_cache()
    # No room on the device (a float64 attention materialises its whole score matrix): slice by
    # slice of the leading dim where the op allows it, else on the host (minutes at benchmark sizes).
    truth = in_leading_slices(reference, inputs, expected, device)
    if truth is not None:
        return truth
    try:
        with torch.no_grad():
            return copy.deepcopy(reference).cpu().double()(*_as_float64(inputs, "cpu"))
    except Exception:
        return None


def in_leading_slices(reference, inputs, expected, device, parts=(4, 16, 64)):
    """The float64 evaluation of `reference`, slice by slice of the leading dim of every input and
    output (all of one size n), or None. Only where slices are independent: checked by the reference
    in its own dtype, whose output on the first slice must be that slice of its full output
    (`expected`); a batch norm in training mode or a reduction over dim 0 fails it."""
    leaves, outputs = tensors(inputs), tensors(expected)
    n = leaves[0].shape[0] if leaves and leaves[0].dim() else 0
    if n < 2 or not outputs or any(t.dim() == 0 or t.shape[0] != n for t in leaves + outputs):
        return None
    reference64 = copy.deepcopy(reference).to(device).double()
    # The whole float64 result (twice the outputs' bytes) is kept on the device when it fits, else
    # in host memory: the slices are still computed on the device, and the checks bring it back
    # chunk by chunk (an 8.6 GB cumsum's opinion on the host's CPU took minutes a trial).
    if torch.device(device).type == "cpu":
        stores = (device,)
    else:
        stores = (device, "cpu") if 2 * _float64_bytes(expected) < _room(device) else ("cpu",)
    for store in stores:
        for count in parts:
            step = -(-n // count)
            try:
                with torch.no_grad():
                    first = tensors(reference(*map_tensors(inputs, lambda t: t[:step])))
                    if len(first) != len(outputs) or not compare.compare_outputs(
                            first, [t[:step] for t in outputs])[0].ok:
                        return None
                    truth = [torch.empty(t.shape, dtype=torch.float64, device=store) for t in outputs]
                    for begin in range(0, n, step):
                        part = tensors(reference64(*_as_float64(
                            map_tensors(inputs, lambda t: t[begin:begin + step]), device)))
                        for whole, piece in zip(truth, part):
                            whole[begin:begin + step] = piece
                return truth if isinstance(expected, (list, tuple)) else truth[0]
            except torch.OutOfMemoryError:
                first = truth = part = None
                torch.cuda.empty_cache()
            except Exception:
                return None
    return None


def reference_resolves(judge, expected, inputs) -> bool:
    """Whether the reference, in its own dtype, matches a float64 evaluation of itself on these
    inputs within its tolerance (if not, these inputs cannot tell a kernel's rounding from a bug)."""
    truth = float64_truth(judge, inputs, expected)
    if truth is None:
        return True  # no second opinion: hold the candidate to the reference
    cast = [t.to(device=e.device, dtype=e.dtype) if isinstance(t, torch.Tensor) and isinstance(e, torch.Tensor) else t
            for t, e in zip(compare.flatten(truth), compare.flatten(expected))]
    return compare.compare_outputs(expected, cast)[0].ok


def reference_has_no_digit(judge, expected, inputs) -> bool:
    """Whether the reference, on these inputs, is further from its float64 evaluation than that
    evaluation's own largest value: it keeps no correct digit (a KL divergence on inputs +1000,
    where every term cancels), so these inputs cannot judge anything that rounds differently."""
    truth = float64_truth(judge, inputs, expected)
    if truth is None or len(tensors(truth)) != len(tensors(expected)):
        return False
    for reference, exact in zip(tensors(expected), tensors(truth)):
        if not reference.is_floating_point() or exact.shape != reference.shape:
            return False
        error, largest = _reference_error(reference, exact)
        if error < largest:
            return False
    return True


def _reference_error(reference, exact) -> tuple[float, float]:
    """(the reference's worst distance from its float64 evaluation `exact`, the largest |exact|),
    over the elements where both are finite; chunk by chunk, on the reference's device."""
    error = largest = 0.0
    for ref, exact_chunk in aligned_chunks(reference, exact):
        ref, exact_chunk = ref.double(), exact_chunk.to(ref.device)
        finite = torch.isfinite(exact_chunk) & torch.isfinite(ref)
        if finite.any():
            error = max(error, float((ref - exact_chunk).abs()[finite].max()))
            largest = max(largest, float(exact_chunk.abs()[finite].max()))
    return error, largest


def as_exact_as_reference(judge, got, expected, inputs, slack: float = 2.0) -> bool:
    """A reference rounds too: long sums, scans and low-precision chains drift from the true
    result by more than the tolerance where values cancel. A candidate that is no further from
    a float64 evaluation of the reference than `slack` times the reference's own worst error
    (plus the usual tolerance) is as correct as the reference. Reduced-precision cheats and
    fragile algorithms (one-pass variances, unshifted exponentials) stay far outside."""
    if not _comparable(got, expected):
        return False
    truth = float64_truth(judge, inputs, expected)
    return truth is not None and within_reference_error(got, expected, truth, slack)


def _comparable(got, expected) -> bool:
    got_tensors, expected_tensors = tensors(got), tensors(expected)
    return bool(expected_tensors) and len(got_tensors) == len(expected_tensors) and all(
        t.is_floating_point() and g.shape == t.shape and g.dtype == t.dtype
        for g, t in zip(got_tensors, expected_tensors))


def within_reference_error(got, expected, truth, slack: float = 2.0) -> bool:
    """The rule of as_exact_as_reference, given the float64 evaluation `truth` (also the rule the
    independent timing script judges outputs by, bench/output_check.py)."""
    if not _comparable(got, expected) or len(tensors(truth)) != len(tensors(expected)):
        return False
    for candidate, reference, exact in zip(tensors(got), tensors(expected), tensors(truth)):
        if exact.shape != reference.shape:
            return False
        tolerance = compare.tolerance_for(reference.dtype)
        # chunk by chunk, on the reference's device: no full-size float64 copy there
        def chunks():
            for c, r, e in aligned_chunks(candidate, reference, exact):
                yield c.to(r.device).double(), r.double(), e.to(r.device)
        reference_error = _reference_error(reference, exact)[0]
        worst, largest = 0.0, 0.0
        for cand, ref, exact_chunk in chunks():
            exact_finite = torch.isfinite(exact_chunk)
            says_what_reference_says = (torch.isnan(cand) & torch.isnan(ref)) | (cand == ref)
            # Where the true value is not finite the candidate's is not either (a NaN turned
            # into 0 is wrong; +inf where torch's formula gives NaN, as GELU's at +inf, is not);
            # where it is finite, the candidate is finite, or it overflowed as the reference did.
            if bool(torch.isfinite(cand)[~exact_finite].any()):
                return False
            measured = exact_finite & torch.isfinite(cand)
            if not bool((measured | says_what_reference_says)[exact_finite].all()):
                return False
            candidate_error = (cand - exact_chunk).abs().masked_fill(~measured, 0)
            magnitude = exact_chunk.abs().masked_fill(~measured, 0)
            if not bool((candidate_error <= slack * reference_error + tolerance.atol
                         + tolerance.rtol * magnitude).all()):
                return False
            if candidate_error.numel():
                worst, largest = max(worst, float(candidate_error.max())), max(largest, float(magnitude.max()))
        if worst > slack * reference_error + tolerance.scale * largest:
            return False
    return True
