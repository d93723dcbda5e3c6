"""The tensors inside the values (tensors, or tuples, lists and dicts of them) that go between the
judge and the candidate: copied out, listed in order, and fingerprinted.

Outputs are copied into the judge's memory the moment they come back, so that nothing the
candidate does later can change what was compared. Inputs are not copied whole (at benchmark
sizes that doubles the memory a trial needs): a sample of them is enough to tell whether a kernel
wrote into them.
"""
from __future__ import annotations

import torch

from harness import compare
from harness.inputs import map_tensors

FINGERPRINT_SAMPLE = 1 << 22


def clone(value):
    return map_tensors(value, lambda t: t.detach().clone())


def tensors(value) -> list[torch.Tensor]:
    return [t for t in compare.flatten(value) if isinstance(t, torch.Tensor)]


def aligned_chunks(*aligned: torch.Tensor):
    """The same flat slices of equally shaped tensors, COMPARE_CHUNK elements at a time (a whole-tensor
    comparison allocates temporaries of the tensors' size: gigabytes at benchmark sizes)."""
    flat = [t.detach().reshape(-1) for t in aligned]
    for begin in range(0, flat[0].numel(), compare.COMPARE_CHUNK):
        yield tuple(f[begin:begin + compare.COMPARE_CHUNK] for f in flat)


def fingerprint(value) -> list[torch.Tensor]:
    """What the judge keeps of its inputs to notice in-place writes without a full copy: a strided
    sample of at most FINGERPRINT_SAMPLE elements per tensor (a kernel that writes into its inputs
    writes far more than one element in FINGERPRINT_SAMPLE)."""
    samples = []
    for t in tensors(value):
        flat = t.detach().reshape(-1)
        samples.append(flat[::max(1, flat.numel() // FINGERPRINT_SAMPLE)].clone())
    return samples


def changed_inputs(before: list[torch.Tensor], after) -> list[int]:
    """Indices of the inputs whose sample differs (NaN equal to NaN)."""
    now = fingerprint(after)
    return [i for i, (a, b) in enumerate(zip(before, now)) if not compare.tensors_equal(a, b.to(a.device))]
