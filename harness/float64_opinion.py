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
    benchmark sizes), it is evaluated slice by slice (in_leading_slices), else on the host. The
    last one is kept: one check asks up to three times about the same inputs."""
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
    (`expected`) up to rounding; a batch norm in training mode or a reduction over dim 0 fails it.

    Where the whole float64 result fits the device twice over it is assembled there; else it is a
    SlicedTruth, recomputed slice by slice on the device each time a check reads it (an 8.6 GB
    cumsum's 17 GB opinion: on the host's CPU it took minutes a trial, and kept in host memory it
    crossed the bus twice a check)."""
    leaves, outputs = tensors(inputs), tensors(expected)
    n = leaves[0].shape[0] if leaves and leaves[0].dim() else 0
    if n < 2 or not outputs or any(t.dim() == 0 or t.shape[0] != n for t in leaves + outputs):
        return None
    reference64 = copy.deepcopy(reference).to(device).double()
    for whole in (True, False) if 2 * _float64_bytes(expected) < _room(device) else (False,):
        for count in parts:
            step = -(-n // count)
            try:
                with torch.no_grad():
                    first = tensors(reference(*map_tensors(inputs, lambda t: t[:step])))
                    if not _same_up_to_rounding(first, [t[:step] for t in outputs]):
                        return None
                    first = None
                    truth = SlicedTruth(reference64, inputs, n, step, device, [t.shape for t in outputs])
                    if not whole:
                        truth.probe()
                        return truth
                    assembled = [torch.empty(t.shape, dtype=torch.float64, device=device) for t in outputs]
                    for begin, end, part in truth.slices():
                        for out, piece in zip(assembled, part):
                            out[begin:end] = piece
                return assembled if isinstance(expected, (list, tuple)) else assembled[0]
            except torch.OutOfMemoryError:
                first = truth = assembled = part = None
                torch.cuda.empty_cache()
            except Exception:
                return None
    return None


# How far the reference on a slice may be from the slice of its whole output, relative to that
# output's largest value, in units of its dtype's scale tolerance. torch picks another kernel for
# another batch size (a GPU cumsum over 65536 columns: 1e-3 apart near zero, beyond the elementwise
# tolerance there); an op that mixes the slices is off by a good part of the output's scale.
SLICE_ROUNDING = 10


def _same_up_to_rounding(first: list, whole: list) -> bool:
    return len(first) == len(whole) and all(
        compare.agrees_to_scale(got, want, SLICE_ROUNDING) for got, want in zip(first, whole))


class SlicedTruth:
    """A float64 evaluation of the reference that is never held whole: each read computes it again
    on the device, one slice of the leading dim at a time (slices() yields (begin, end, outputs))."""

    def __init__(self, reference64, inputs, n: int, step: int, device, shapes):
        self.reference64, self.inputs, self.n, self.step, self.device = reference64, inputs, n, step, device
        self.shapes = shapes

    def probe(self) -> None:
        """Raises OutOfMemoryError unless two slices fit at once: a reader's loop still holds one
        slice while the generator computes the next, so one slice that fits alone is not enough."""
        pieces = self.slices()
        first = next(pieces)
        next(pieces, None)  # computed while `first` is held, as in a reader's loop
        del first, pieces

    def slices(self):
        for begin in range(0, self.n, self.step):
            with torch.no_grad():
                part = tensors(self.reference64(*_as_float64(
                    map_tensors(self.inputs, lambda t: t[begin:begin + self.step]), self.device)))
            yield begin, min(begin + self.step, self.n), part
            part = None


def _count(truth) -> int:
    return len(truth.shapes) if isinstance(truth, SlicedTruth) else len(tensors(truth))


def _shapes(truth) -> list:
    return truth.shapes if isinstance(truth, SlicedTruth) else [t.shape for t in tensors(truth)]


def _pieces(truth, *aligned):
    """(output index, its chunks in each of `aligned`' outputs, the truth's chunk), covering every
    output of `truth` once, whole or sliced."""
    if isinstance(truth, SlicedTruth):
        for begin, end, part in truth.slices():
            for index, exact in enumerate(part):
                for chunks in aligned_chunks(*[tensors(a)[index][begin:end] for a in aligned], exact):
                    yield index, chunks[:-1], chunks[-1]
        return
    for index, exact in enumerate(tensors(truth)):
        for chunks in aligned_chunks(*[tensors(a)[index] for a in aligned], exact):
            yield index, chunks[:-1], chunks[-1]


def reference_resolves(judge, expected, inputs) -> bool:
    """Whether the reference, in its own dtype, matches a float64 evaluation of itself on these
    inputs within its tolerance (if not, these inputs cannot tell a kernel's rounding from a bug)."""
    truth = float64_truth(judge, inputs, expected)
    if truth is None:
        return True  # no second opinion: hold the candidate to the reference
    if isinstance(truth, SlicedTruth):
        outputs = tensors(expected)
        if len(outputs) != _count(truth) or not all(t.is_floating_point() for t in outputs):
            return True
        for index, reference in enumerate(outputs):
            row = reference[0].numel()
            pieces = ((ref, exact.to(device=ref.device, dtype=ref.dtype), begin * row)
                      for begin, end, part in truth.slices() for ref, exact in [(reference[begin:end], part[index])])
            if not compare.compare_pieces(pieces, reference.shape, reference.dtype).ok:
                return False
        return True
    cast = [t.to(device=e.device, dtype=e.dtype) if isinstance(t, torch.Tensor) and isinstance(e, torch.Tensor) else t
            for t, e in zip(compare.flatten(truth), compare.flatten(expected))]
    return compare.compare_outputs(expected, cast)[0].ok


def reference_has_no_digit(judge, expected, inputs) -> bool:
    """Whether the reference, on these inputs, is further from its float64 evaluation than that
    evaluation's own largest value: it keeps no correct digit (a KL divergence on inputs +1000,
    where every term cancels), so these inputs cannot judge anything that rounds differently."""
    return keeps_no_digit(expected, float64_truth(judge, inputs, expected))


def keeps_no_digit(expected, truth) -> bool:
    """Whether every output of `expected` is further from its float64 evaluation `truth` than
    the largest |value| of that evaluation: rounding noise, not a result."""
    outputs = tensors(expected)
    if truth is None or _count(truth) != len(outputs):
        return False
    if any(not r.is_floating_point() or shape != r.shape for r, shape in zip(outputs, _shapes(truth))):
        return False
    return all(error >= largest for error, largest in _reference_errors(expected, truth))


def _reference_errors(expected, truth) -> list[tuple[float, float]]:
    """Per output: (the reference's worst distance from its float64 evaluation, the largest
    |float64 value|), over the elements where both are finite; chunk by chunk, on the reference's
    device."""
    errors = [[0.0, 0.0] for _ in tensors(expected)]
    for index, (ref,), exact in _pieces(truth, expected):
        ref, exact = ref.double(), exact.to(ref.device)
        finite = torch.isfinite(exact) & torch.isfinite(ref)
        if finite.any():
            errors[index][0] = max(errors[index][0], float((ref - exact).abs()[finite].max()))
            errors[index][1] = max(errors[index][1], float(exact.abs()[finite].max()))
    return [tuple(e) for e in errors]


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
    references = tensors(expected)
    if not _comparable(got, expected) or _count(truth) != len(references):
        return False
    if any(shape != r.shape for r, shape in zip(references, _shapes(truth))):
        return False
    reference_errors = [error for error, _ in _reference_errors(expected, truth)]
    worst, largest = [0.0] * len(references), [0.0] * len(references)
    # chunk by chunk, on the reference's device: no full-size float64 copy there
    for index, (cand, ref), exact in _pieces(truth, got, expected):
        tolerance = compare.tolerance_for(references[index].dtype)
        cand, ref, exact = cand.to(ref.device).double(), ref.double(), exact.to(ref.device)
        exact_finite = torch.isfinite(exact)
        says_what_reference_says = (torch.isnan(cand) & torch.isnan(ref)) | (cand == ref)
        # Where the true value is not finite the candidate's is not either (a NaN turned into 0 is
        # wrong; +inf where torch's formula gives NaN, as GELU's at +inf, is not); where it is
        # finite, the candidate is finite, or it overflowed as the reference did.
        if bool(torch.isfinite(cand)[~exact_finite].any()):
            return False
        measured = exact_finite & torch.isfinite(cand)
        if not bool((measured | says_what_reference_says)[exact_finite].all()):
            return False
        candidate_error = (cand - exact).abs().masked_fill(~measured, 0)
        magnitude = exact.abs().masked_fill(~measured, 0)
        if not bool((candidate_error <= slack * reference_errors[index] + tolerance.atol
                     + tolerance.rtol * magnitude).all()):
            return False
        if candidate_error.numel():
            worst[index] = max(worst[index], float(candidate_error.max()))
            largest[index] = max(largest[index], float(magnitude.max()))
    for index, reference in enumerate(references):
        scale = compare.tolerance_for(reference.dtype).scale
        if worst[index] > slack * reference_errors[index] + scale * largest[index]:
            return False
    return True
