"""Checks that a candidate really computes in its own Triton kernels.

- TritonLaunches patches the leaf launch methods (JITFunction.run, and InterpretedFunction.run in
  interpreter mode; autotuners and heuristics end there too) to count launches, or to skip them
  for the ghost replay.
- TorchOps is a TorchDispatchMode that records the ATen ops a model runs outside Triton launches and
  can poison fresh allocations (torch.empty*, new_empty) with NaN, so stale memory never passes.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ALLOCATION_OPS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"}
# Ops that move, view, allocate or describe data: they compute nothing a kernel should replace.
NON_COMPUTE_OPS = ALLOCATION_OPS | {
    "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "arange", "lift_fresh", "lift_fresh_copy", "detach", "alias", "view", "_unsafe_view",
    "reshape", "as_strided", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze", "flatten",
    "unflatten", "select", "slice", "narrow", "split", "split_with_sizes", "chunk", "unbind", "contiguous",
    "clone", "copy_", "_to_copy", "to", "fill_", "zero_", "set_", "resize_", "view_as", "expand_as",
    "is_same_size", "_local_scalar_dense", "item", "sym_size", "sym_stride", "sym_numel", "dim",
    "_has_compatible_shallow_copy_type", "record_stream", "empty_permuted",
}
# Work a candidate may leave to vendor libraries (cuBLAS, cuDNN) while fusing the rest in Triton.
ALLOWED_EXTERN_OPS = {
    "mm", "bmm", "addmm", "addbmm", "baddbmm", "addmv", "mv", "dot", "matmul", "linear", "_scaled_mm",
    "convolution", "_convolution", "cudnn_convolution", "cudnn_convolution_transpose", "mkldnn_convolution",
    "convolution_overrideable", "conv2d", "conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d",
}


def _poison(tensor: torch.Tensor) -> None:
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
        tensor.fill_(float("nan"))
    elif tensor.dtype == torch.bool:
        tensor.fill_(True)
    else:
        tensor.fill_(torch.iinfo(tensor.dtype).max)


class TritonLaunches:
    """Process-wide hook on Triton's launch path: use the `triton_launches` instance."""

    def __init__(self):
        self.count = 0
        self.counting = False
        self.skip = False       # ghost replay: every launch becomes a no-op
        self.depth = 0          # > 0 while a launch runs (the interpreter's host copies are not model ops)

    def reset(self) -> None:
        self.count, self.counting, self.skip, self.depth = 0, False, False, 0

    def install(self) -> None:
        """Idempotent: patches the launch classes once per process."""
        from triton.runtime.jit import JITFunction
        launch_classes = [JITFunction]
        try:
            from triton.runtime.interpreter import InterpretedFunction
            launch_classes.append(InterpretedFunction)
        except ImportError:
            pass
        for cls in launch_classes:
            if getattr(cls.run, "_akg_launch_hook", False):
                continue
            cls.run = self._wrap(cls.run)

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
    """Records the ATen ops run outside Triton launches; optionally poisons fresh allocations."""

    def __init__(self, launches: TritonLaunches, poison_allocations: bool = False):
        super().__init__()
        self.launches = launches
        self.poison_allocations = poison_allocations
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self.launches.depth:
            return result
        name = func.overloadpacket.__name__
        self.ops.add(name)
        if self.poison_allocations and name in ALLOCATION_OPS and isinstance(result, torch.Tensor):
            _poison(result)
        return result

    @property
    def compute_ops(self) -> set[str]:
        return {op for op in self.ops if op not in NON_COMPUTE_OPS}


triton_launches = TritonLaunches()
