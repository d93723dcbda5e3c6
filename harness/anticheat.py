"""Checks that a candidate really computes in its own Triton kernels.

- TritonLaunches patches the leaf launch methods (JITFunction.run, and InterpretedFunction.run in
  interpreter mode; autotuners and heuristics end there too) to count launches, or to skip them
  for the ghost replay.
- TorchOps is a TorchDispatchMode that records the ATen ops a model runs outside Triton launches and
  can poison fresh allocations: torch.empty* with NaN, so stale memory never passes; or, for the
  ghost replays, every allocation (zeros, ones and full too) with one of two poison values, so that
  any output element that comes out the same under both was produced without a Triton launch.

Both live in the candidate's process, so the judge treats what they report as claims: the ghost
replays' outputs are evaluated by the judge, and `launch_hook_intact` / `TorchOps.entered_and_left`
let the worker report a candidate that replaced or bypassed them.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ALLOCATION_OPS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "empty_permuted"}
FILLED_ALLOCATION_OPS = {"zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones",
                         "new_full", "scalar_tensor"}
# Ops that move, view, allocate or describe data: they compute nothing a kernel should replace.
NON_COMPUTE_OPS = ALLOCATION_OPS | {
    "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "arange", "lift_fresh", "lift_fresh_copy", "detach", "alias", "view", "_unsafe_view",
    "reshape", "as_strided", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze", "flatten",
    "unflatten", "select", "slice", "narrow", "split", "split_with_sizes", "chunk", "unbind", "contiguous",
    "clone", "copy_", "_to_copy", "to", "fill_", "zero_", "set_", "resize_", "view_as", "expand_as",
    "is_same_size", "_local_scalar_dense", "item", "sym_size", "sym_stride", "sym_numel", "dim",
    "_has_compatible_shallow_copy_type", "record_stream", "empty_permuted", "cat", "stack",
}
# Work a candidate may leave to vendor libraries (cuBLAS, cuDNN) while fusing the rest in Triton.
ALLOWED_EXTERN_OPS = {
    "mm", "bmm", "addmm", "addbmm", "baddbmm", "addmv", "mv", "dot", "matmul", "linear", "_scaled_mm",
    "convolution", "_convolution", "cudnn_convolution", "cudnn_convolution_transpose", "mkldnn_convolution",
    "convolution_overrideable", "conv2d", "conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d",
}


# In a ghost replay torch's copies and vendor products carry no information either: poisoned too, so
# a kernel that works in place on a copy (or on a matmul's output) is still seen to do the work.
GHOST_POISONED_OPS = {"clone", "_to_copy", "copy_", "contiguous", "cat", "stack", "fill_", "zero_"}
MATMUL_OPS = {"mm", "bmm", "addmm", "addbmm", "baddbmm", "addmv", "mv", "dot", "matmul", "linear", "_scaled_mm"}
CONV_OPS = ALLOWED_EXTERN_OPS - MATMUL_OPS


def allowed_vendor_ops(reference_ops: set[str]) -> set[str]:
    """The vendor ops a candidate may keep: those of the families (matmul, convolution) the
    reference itself runs, and only when the reference has other work to fuse around them."""
    if not reference_ops - ALLOWED_EXTERN_OPS:
        return set()
    allowed = set()
    for family in (MATMUL_OPS, CONV_OPS):
        if reference_ops & family:
            allowed |= family
    return allowed


def poison_value(dtype: torch.dtype, second: bool = False):
    """Two poisons per dtype that no computation maps to the same value by accident."""
    if dtype.is_floating_point or dtype.is_complex:
        return 1.0e4 * 1.2345 if second else float("nan")
    if dtype == torch.bool:
        return not second
    info = torch.iinfo(dtype)
    return info.min if second else info.max


def _poison(tensor: torch.Tensor, second: bool = False) -> None:
    tensor.fill_(poison_value(tensor.dtype, second))


class TritonLaunches:
    """Process-wide hook on Triton's launch path: use the `triton_launches` instance."""

    def __init__(self):
        self.count = 0
        self.counting = False
        self.skip = False       # ghost replay: every launch becomes a no-op
        self.depth = 0          # > 0 while a launch runs (the interpreter's host copies are not model ops)
        self._hooks: dict = {}  # class -> the hook installed on it

    def reset(self) -> None:
        self.count, self.counting, self.skip, self.depth = 0, False, False, 0

    def launch_classes(self) -> list:
        from triton.runtime.jit import JITFunction
        classes = [JITFunction]
        try:
            from triton.runtime.interpreter import InterpretedFunction
            classes.append(InterpretedFunction)
        except ImportError:
            pass
        return classes

    def install(self) -> None:
        """Idempotent: patches the launch classes once per process."""
        for cls in self.launch_classes():
            if getattr(cls.run, "_akg_launch_hook", False):
                continue
            cls.run = self._wrap(cls.run)
            self._hooks[cls] = cls.run

    def _wrap(self, original_run):
        hook = self

        def run(kernel, *args, **kwargs):
            if kwargs.get("warmup"):
                return original_run(kernel, *args, **kwargs)
            if hook.counting:
                hook.count += 1
            if hook.skip:
                return None
            hook.depth += 1
            try:
                return original_run(kernel, *args, **kwargs)
            finally:
                hook.depth -= 1

        run._akg_launch_hook = True
        return run


class TorchOps(TorchDispatchMode):
    """Records the ATen ops run outside Triton launches and poisons allocations.

    poison: None, "empty" (torch.empty* become NaN), "all" / "all_b" (every allocation, including
    zeros/ones/full, gets the first / second poison value: the ghost replays).
    count_inside_launches: on a GPU nothing inside a launch runs ATen ops, so every op counts and
    the launch depth (which a candidate could fake) is not consulted; the interpreter's own host
    copies run inside launches and are skipped on CPU."""

    def __init__(self, launches: TritonLaunches, poison: str | None = None, count_inside_launches: bool = False):
        super().__init__()
        self.launches = launches
        self.poison = poison
        self.count_inside_launches = count_inside_launches
        self.ops: set[str] = set()
        self._entered = self._left = 0

    def __enter__(self):
        self._entered += 1
        return super().__enter__()

    def __exit__(self, *exc):
        self._left += 1
        return super().__exit__(*exc)

    @property
    def entered_and_left(self) -> bool:
        return self._entered == self._left and self._entered > 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self.launches.depth and not self.count_inside_launches:
            return result
        name = func.overloadpacket.__name__
        self.ops.add(name)
        if self.poison and isinstance(result, torch.Tensor):
            ghost = self.poison != "empty"
            if name in ALLOCATION_OPS or (ghost and name in FILLED_ALLOCATION_OPS | GHOST_POISONED_OPS
                                          | ALLOWED_EXTERN_OPS):
                _poison(result, second=self.poison == "all_b")
        return result

    @property
    def compute_ops(self) -> set[str]:
        return {op for op in self.ops if op not in NON_COMPUTE_OPS}


triton_launches = TritonLaunches()


def launch_hook_intact() -> bool:
    """Whether every Triton launch class still runs through the installed hook."""
    return all(cls.run is triton_launches._hooks.get(cls) for cls in triton_launches.launch_classes())
