"""Names of generated kernels: after what they compute (`layer_norm_kernel`, `rms_norm_kernel`,
`softmax_kernel`, `linear_gelu_kernel`), not after the last ATen node of the trace.

The names come from the reference's own calls: capture records the outermost torch functions
forward() calls (F.layer_norm, torch.softmax, the `*` of a hand-written RMSNorm ...), before any
decomposition. Arithmetic gives way to a named op (bias + gelu + residual + layer_norm reads
`gelu_layer_norm`); a few hand-written compositions are recognised by their calls.
"""
from __future__ import annotations

import builtins
import re

import torch

# Calls that only move data or read sizes say nothing about what a kernel computes.
_LAYOUT = {"size", "dim", "shape", "view", "reshape", "contiguous", "to", "float", "half", "bfloat16",
           "unsqueeze", "squeeze", "expand", "expand_as", "permute", "transpose", "flatten", "unflatten",
           "t", "T", "mT", "getitem", "get", "type_as", "clone", "detach", "numel", "dtype", "device",
           "split", "chunk", "unbind", "stack", "cat", "narrow", "select", "flip", "ndim", "is_floating_point",
           "dropout", "__get__", "len", "slice"}
_ARITHMETIC = {"add", "sub", "mul", "div", "truediv", "rsub", "neg", "pow", "radd", "rmul", "rtruediv",
               "floordiv", "mod", "abs", "exp", "log", "sqrt", "rsqrt", "mean", "sum", "square"}
_SPELLING = {"truediv": "div", "radd": "add", "rmul": "mul", "rtruediv": "div", "rsub": "sub",
             "scaled_dot_product_attention": "attention", "rms_norm": "rms_norm"}


class CallRecorder(torch.overrides.TorchFunctionMode):
    """Records the outermost torch function calls made under it (nested ones run with the mode off)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "") or ""
        # An ATen overload called directly (torch.ops.aten.slice.Tensor) is named by its packet.
        name = re.sub(r"\W+", "_", name.split(".")[0]).strip("_")
        name = _SPELLING.get(name, name)
        if name and name not in _LAYOUT:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def composite_name(calls: list[str]) -> str:
    """One name for a sequence of calls: hand-written norms recognised, named ops over arithmetic."""
    names = set(calls)
    if "mean" in names and names & {"sqrt", "rsqrt"} and not names & {"sub", "var", "layer_norm"}:
        return "rms_norm"
    if names & {"mean", "var"} and "sub" in names and names & {"sqrt", "rsqrt"}:
        return "layer_norm"
    named = [c for c in calls if c not in _ARITHMETIC]
    chosen = named or calls
    unique = list(dict.fromkeys(chosen))
    return "_".join(unique[:3]) or "copy"


def _role(k) -> str:
    if k.plan.launch == ("row", "split"):
        return "partials"
    if k.node.kind == "reduction" or (k.plan.strategy in ("persistent", "looped") and len(k.node.shape) == len(k.plan.space)
                                      and all(k.node.shape[d] == "1" for d in k.plan.reduced)):
        return "stats"  # one value per row
    return re.sub(r"_\d+$", "", k.node.op).strip("_") or "part"


def kernel_names(kernels: list, calls: list[str], fused: list[list[str]], reserved: set = frozenset()) -> list[str]:
    """A name per kernel (without `_kernel`): the file's name for the kernel writing the model's
    last output, that name and the kernel's role (partials, stats) for the kernels before it.
    `fused[i]`: the ops kernel i computes (names it when the reference's calls are unknown).
    A name in `reserved` (builtins, the file's other definitions) gets an `_op` suffix: the
    launcher is a module-level function of that name."""
    reserved = set(reserved) | set(dir(builtins))
    base = composite_name(calls) if calls else None
    names: list[str] = []
    for i, (k, ops) in enumerate(zip(kernels, fused)):
        if base is None:
            name = composite_name([op for op in ops if op not in ("view", "full")])
        elif i == len(kernels) - 1:
            name = base
        else:
            name = f"{base}_{_role(k)}"
        if name in reserved:
            name += "_op"
        stem, n = name, 2
        while name in names:
            name, n = f"{stem}_{n}", n + 1
        names.append(name)
    return names
