"""Whether the candidate's kernels did the work: the census of the ATen ops it left in torch, and
the ghost replays.

Both need instrumentation inside the candidate's process (the op recorder, launches skipped and
allocations poisoned); what comes back are claims, and the judge decides on them here. A partial
torch fallback (the work done by another torch op, or by torch beside a trivial kernel) must not
pass: every compute op of the reference must leave torch, and every output element must come
from a Triton launch.
"""
from __future__ import annotations

import torch

from harness import inputs as judge_inputs
from harness.anticheat import NON_COMPUTE_OPS, allowed_vendor_ops
from harness.errors import Rejection
from harness.tensor_values import aligned_chunks, tensors

COPY_OPS = {"clone", "_to_copy", "copy_", "contiguous", "to", "cat", "stack"}


def check_own_work(judge):
    """Census of the ATen ops left in torch, and the two ghost replays. Raises with every reason."""
    reasons = []
    report = judge.report
    uses_triton = judge.dsl.startswith("triton")
    reference_compute = {op for op in judge.reference_ops if op not in NON_COMPUTE_OPS}
    allowed = allowed_vendor_ops(reference_compute)
    compute = {op for op in judge.candidate_ops if op not in NON_COMPUTE_OPS}
    if not reference_compute:  # a data-movement task: the copies are the work
        compute |= judge.candidate_ops & judge.reference_ops & COPY_OPS
    left = sorted(compute - allowed)
    report["torch_ops_left"] = sorted(compute)
    report["allowed_leftovers"] = sorted(compute & allowed)
    if uses_triton and report["triton_launches"] == 0:
        reasons.append("no Triton kernel was launched: the work must be done by @triton.jit kernels")
    if left:
        reasons.append(f"ModelNew still computes in PyTorch ({', '.join(left)}); only views, allocations, "
                       "copies and the vendor matmul/convolution of the reference (with Triton work fused "
                       "around them) may stay in torch")
    if uses_triton and report["triton_launches"]:
        unlaunched = _ghost_unlaunched(judge)
        if unlaunched:
            reasons.append(unlaunched)
    if reasons:
        raise Rejection("cheat", "; ".join(reasons))


def _ghost_unlaunched(judge) -> str | None:
    """Replay with every launch skipped and every allocation poisoned, twice with different
    poisons: an output element that comes out the same both times was not produced by a launch."""
    try:
        first_inputs = judge_inputs.task_inputs(judge.task, judge.first_seed, judge.device)
        ghost_a, _ = judge.call_candidate(first_inputs, "ghost_a", "the ghost replay")
        ghost_b, _ = judge.call_candidate(first_inputs, "ghost_b", "the ghost replay")
        del first_inputs
    except Rejection as rejection:
        if rejection.status in ("timeout", "crash", "oom"):
            raise
        return None  # it depends on its kernels enough to fail without them
    leaves_a, leaves_b = tensors(ghost_a), tensors(ghost_b)
    if len(leaves_a) != judge.output_count or len(leaves_b) != judge.output_count:
        return None
    aliased = judge.reference_aliases
    for index, (a, b) in enumerate(zip(leaves_a, leaves_b)):
        if index in aliased or a.shape != b.shape or not a.numel():
            continue
        count = sum(_same_count(a_part, b_part) for a_part, b_part in aligned_chunks(a, b))
        if count:
            return (f"{count} of {a.numel()} elements of output {index} come out the same when every Triton "
                    "launch is skipped, so they are computed by torch (or come from cached memory), not by "
                    "your kernels")
    return None


def _same_count(a: torch.Tensor, b: torch.Tensor) -> int:
    same = (a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point() else (a == b)
    return int(same.sum())
