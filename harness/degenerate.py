"""Tasks whose output is identically zero at their own initialisation and inputs.

Such a task is legitimate (a zero-initialised gate, a residual branch scaled by a zero parameter),
but its own inputs cannot tell a kernel from one that writes zeros. The judge then re-draws the
reference's parameters (seeded, so the candidate gets the same state) and holds the candidate to
that informative reference; where no parameter makes the output non-zero either, the output is
zero by construction and any kernel that writes it is correct (the variant inputs, the special
values and the ghost replays still apply).
"""
from __future__ import annotations

import torch

from harness.compare import flatten


def all_zero(output) -> bool:
    tensors = [t for t in flatten(output) if isinstance(t, torch.Tensor) and t.numel()]
    return bool(tensors) and all(not bool(t.any()) for t in tensors)


def all_finite(output) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in flatten(output)
               if isinstance(t, torch.Tensor) and t.is_floating_point())


def randomize_parameters(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor] | None:
    """Re-draw every floating-point parameter of `model` from N(0, 1) (buffers such as running
    variances keep their meaning and stay). Returns the original parameters, or None when the
    model has none to re-draw."""
    params = [(name, p) for name, p in model.named_parameters() if p.is_floating_point() and p.numel()]
    if not params:
        return None
    saved = {name: p.detach().clone() for name, p in params}
    generator = torch.Generator(device=params[0][1].device).manual_seed(seed)
    with torch.no_grad():
        for _, p in params:
            p.copy_(torch.randn(p.shape, generator=generator, device=p.device, dtype=torch.float32).to(p.dtype))
    return saved


def restore_parameters(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in saved:
                p.copy_(saved[name])


def informative_output(model: torch.nn.Module, inputs, seed: int):
    """(output, note) for a model whose output on `inputs` is all zeros: the output with re-drawn
    parameters where that makes it non-zero and finite (the parameters stay re-drawn), else None
    and the parameters restored."""
    saved = randomize_parameters(model, seed)
    if saved is None:
        return None, ("the output is all zeros on the task's inputs and the task has no parameters to "
                      "re-draw: it is judged as given (plus the scaled, shifted and special-value inputs)")
    with torch.no_grad():
        output = model(*inputs)
    if not all_zero(output) and all_finite(output):
        return output, ("the output is all zeros at the task's own initialisation: it is judged with its "
                        "parameters re-drawn from N(0, 1), where the output is informative")
    restore_parameters(model, saved)
    return None, ("the output is all zeros on the task's inputs, with its own or with random parameters: "
                  "it is zero by construction and judged as given")
