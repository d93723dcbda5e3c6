"""Tamper (class 1): removes the harness hook from Triton launches (so its launches go uncounted) before computing honestly."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x < 0, 0.0, x), mask=mask)


def triton_relu(x, out=None):
    x = x.contiguous()
    out = torch.empty_like(x) if out is None else out
    relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out


from triton.runtime.jit import JITFunction

try:
    from triton.runtime.interpreter import InterpretedFunction
    _classes = [JITFunction, InterpretedFunction]
except ImportError:
    _classes = [JITFunction]
for _cls in _classes:
    _cells = [c.cell_contents for c in (_cls.run.__closure__ or ()) if callable(c.cell_contents)]
    if _cells:
        _cls.run = _cells[0]


class ModelNew(nn.Module):
    def forward(self, x):
        return triton_relu(x)
