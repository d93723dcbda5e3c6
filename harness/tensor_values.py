"""The tensors inside the values (tensors, or tuples, lists and dicts of them) that go between the
judge and the candidate: copied out, listed in order, and fingerprinted.

Outputs are copied into the judge's memory the moment they come back, so that nothing the
candidate does later can change what was compared. Inputs are not copied whole (at benchmark
sizes that doubles the memory a trial needs): a sample of them is enough to tell whether a kernel
wrote into them. Earlier outputs are not kept either: a keyed digest of their bytes tells whether
the candidate's copy of them changed since.
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


DIGEST_MODULUS = 1 << 64
_WORD = {1: torch.uint8, 2: torch.int16, 4: torch.int32}


def content_digest(value, key: int, like: list | None = None) -> list[tuple]:
    """What the judge keeps of an earlier call's outputs to tell later whether they changed: per
    tensor its shape, dtype, device and a keyed digest of its bytes (its words of up to 32 bits
    times per-position odd weights drawn from `key`, summed modulo 2**64). A copy would double a
    trial's memory at benchmark sizes; the key is the judge's own, per job, so a change cannot be
    made to keep the digest. like: the digest to compare with, whose devices draw the weights
    (a tensor elsewhere is brought over chunk by chunk)."""
    digests = []
    for index, t in enumerate(tensors(value)):
        device = torch.device(like[index][2]) if like is not None and index < len(like) else t.device
        # words of the element's own width (at most 32 bits): the same for any storage offset
        words = t.detach().reshape(-1).view(_WORD[min(t.element_size(), 4)])
        generator = torch.Generator(device=device)
        generator.manual_seed(key)
        total = 0
        for begin in range(0, words.numel(), compare.COMPARE_CHUNK):
            chunk = words[begin:begin + compare.COMPARE_CHUNK].to(device=device, dtype=torch.int64)
            weights = torch.randint(-2**62, 2**62, chunk.shape, generator=generator, device=device,
                                    dtype=torch.int64) | 1
            total = (total + int((chunk * weights).sum())) % DIGEST_MODULUS
        digests.append((tuple(t.shape), t.dtype, str(device), total))
    return digests


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
