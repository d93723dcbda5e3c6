"""The inputs a judgement uses: the task's own distribution under fresh seeds, plus variants that make
fragile numerics and identity-on-these-inputs cases show, and a second shape.

Variants transform the floating-point tensors of the task's inputs (integer tensors, such as
indices, are kept as they are):
- "scaled": x 30, so exponentials without max-subtraction overflow;
- "shifted": + 1000, so one-pass E[x^2] - E[x]^2 variances cancel catastrophically;
- "special": -|x| with a few NaN, +inf and -inf: an op that is the identity on non-negative inputs
  is exercised, and NaN/inf must propagate as torch's do.
A variant is used only where the reference's output stays as defined as on the task's own inputs.
"""
from __future__ import annotations

import random

import torch

VARIANTS = ("scaled", "shifted", "special")
SPECIALS_PER_TENSOR = 3


def map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: map_tensors(v, fn) for k, v in value.items()}
    return value


def task_inputs(task, seed: int, device: torch.device):
    """The task's inputs for one seed, on `device`. On a GPU they are drawn there (torch's default
    device set to it), never on the host first: a multi-GB input costs no host memory and no copy.
    A get_inputs() that cannot run that way (it calls .numpy(), say) is drawn on the host."""
    device = torch.device(device)
    torch.manual_seed(seed)
    if device.type != "cpu":
        try:
            with device:
                return map_tensors(task.get_inputs(), lambda t: t.to(device))
        except Exception:
            torch.manual_seed(seed)
    return map_tensors(task.get_inputs(), lambda t: t.to(device))


def _special(tensor: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """A few NaN/+inf/-inf written into `tensor`, a fresh tensor of the caller's (no copy: at
    benchmark sizes a copy is gigabytes)."""
    flat = tensor.reshape(-1)
    if flat.numel() < 4 * SPECIALS_PER_TENSOR:
        return tensor
    # a few distinct positions, drawn without permuting the whole tensor (seconds at 64M elements)
    picks = torch.tensor(rng.sample(range(flat.numel()), SPECIALS_PER_TENSOR), device=flat.device)
    flat[picks] = torch.tensor([float("nan"), float("inf"), float("-inf")], dtype=flat.dtype, device=flat.device)
    return flat.reshape(tensor.shape)


def variant(inputs, name: str, seed: int):
    """A transformed copy of `inputs` (floating-point tensors only)."""
    rng = random.Random(seed)

    def transform(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        if name == "scaled":
            return t * 30
        if name == "shifted":
            return t + 1000
        if name == "special":
            return _special(t.abs().neg_(), rng)
        raise ValueError(f"unknown input variant {name!r}")
    return map_tensors(inputs, transform)


def has_floating_input(inputs) -> bool:
    from harness.compare import flatten
    return any(isinstance(t, torch.Tensor) and t.is_floating_point() for t in flatten(inputs))


def nonfinite_count(output) -> int:
    from harness.compare import flatten
    return sum(int((~torch.isfinite(t)).sum()) for t in flatten(output)
               if isinstance(t, torch.Tensor) and t.is_floating_point())


def second_shapes(inputs, grow: bool):
    """Inputs of another shape: the leading dim of every input that shares the first input's rank
    changed, else of the first input alone; then an extra leading dim of 2 on the first input.
    (description, inputs) pairs, each made only when asked for (the last doubles the first input:
    gigabytes at benchmark sizes); the reference decides which apply. grow: the new leading dim is
    larger (on the CPU's shrunk sizes, where a grid capped at the shrunk size would pass),
    otherwise smaller (at full size on a GPU, where memory is the limit)."""
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    if not tensors or tensors[0].dim() == 0:
        return
    first = tensors[0]
    size = first.shape[0]
    other = size + size // 2 + 1 if grow or size == 1 else size // 2 + 1

    def relead(t: torch.Tensor, new: int) -> torch.Tensor:
        index = torch.arange(new, device=t.device) % t.shape[0]
        return t.index_select(0, index)

    shape = lambda ins: str(tuple(next(t for t in ins if isinstance(t, torch.Tensor)).shape))  # noqa: E731
    same_rank = [relead(t, other) if isinstance(t, torch.Tensor) and t.dim() == first.dim() and t.shape[0] == size
                 else t for t in inputs]
    yield f"leading dim {size} -> {other} {shape(same_rank)}", same_rank
    del same_rank
    first_only = [relead(t, other) if t is first else t for t in inputs]
    yield f"first input {shape(first_only)}", first_only
    del first_only
    extra_dim = [torch.stack([t, t.flip(0) if t.dim() else t]) if t is first else t for t in inputs]
    yield f"an extra leading dim {shape(extra_dim)}", extra_dim
