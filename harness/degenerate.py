"""Tasks whose output is identically zero, or only rounding noise, at their own initialisation
and inputs.

Such a task is legitimate (a zero-initialised gate, a residual branch scaled by a zero parameter;
the mean of a group norm's output, which is its bias's mean, 0, plus float32 rounding), but its
own inputs cannot tell a kernel from one that writes zeros, or judge a kernel by digits the
reference does not have. The judge then re-draws the reference's parameters (seeded, so the
candidate gets the same state) and holds the candidate to that informative reference; where no
parameter makes the output informative either, it is judged as given (the variant inputs, the
special values and the ghost replays still apply).
"""
from __future__ import annotations

import math

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


NOISE_SUSPECT = 1e-3  # outputs this small beside the inputs get a float64 look


def rounding_noise(model: torch.nn.Module, inputs, output, device) -> bool:
    """Whether `output` is rounding noise: every output is smaller than NOISE_SUSPECT times the
    inputs' largest value, and further from the model's float64 evaluation than that evaluation's
    own largest value (the float64 mean of a group norm's output is ~1e-17, float32 gives ~1e-8)."""
    from harness.float64_opinion import evaluate_in_float64, keeps_no_digit

    scale = max([_largest_magnitude(t) for t in flatten(inputs)
                 if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()] + [1.0])
    outputs = [t for t in flatten(output) if isinstance(t, torch.Tensor)]
    if not outputs or not all(t.is_floating_point() and t.numel() for t in outputs) or not all_finite(output):
        return False
    if any(_largest_magnitude(t) > NOISE_SUSPECT * scale for t in outputs):
        return False
    return keeps_no_digit(output, evaluate_in_float64(model, inputs, output, device))


def _largest_magnitude(t: torch.Tensor) -> float:
    """max |t| without a full-size |t| (a multi-GB input on the GPU): its extremes."""
    low, high = torch.aminmax(t)
    largest = max(abs(float(low)), abs(float(high)))
    return largest if math.isfinite(largest) else 0.0


def informative_output(model: torch.nn.Module, inputs, seed: int, device=None, noise: bool = False):
    """(output, note) for a model whose output on `inputs` is all zeros (or, `noise`, rounding
    noise): the output with re-drawn parameters where that makes it informative (the parameters
    stay re-drawn), else None and the parameters restored."""
    what = "rounding noise (float32 keeps no digit of its float64 value)" if noise else "all zeros"
    saved = randomize_parameters(model, seed)
    if saved is None:
        return None, (f"the output is {what} on the task's inputs and the task has no parameters to "
                      "re-draw: it is judged as given (plus the scaled, shifted and special-value inputs)")
    with torch.no_grad():
        output = model(*inputs)
    if not all_zero(output) and all_finite(output) and not (noise and rounding_noise(model, inputs, output, device)):
        return output, (f"the output is {what} at the task's own initialisation: it is judged with its "
                        "parameters re-drawn from N(0, 1), where the output is informative")
    restore_parameters(model, saved)
    return None, (f"the output is {what} on the task's inputs, with its own or with random parameters: "
                  + ("it is judged as given" if noise else "it is zero by construction and judged as given"))
