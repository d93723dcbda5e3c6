"""Tamper (class 1/2): leaves every dispatch mode while torch does the work, so an in-process op recorder sees nothing; a token Triton launch keeps the launch count up."""
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


from torch.utils._python_dispatch import _pop_mode_temporarily, _len_torch_dispatch_stack


class ModelNew(nn.Module):
    def forward(self, x):
        triton_relu(x[:1])
        depth = _len_torch_dispatch_stack()
        if depth:
            with _pop_mode_temporarily():
                return torch.relu(x)
        return torch.relu(x)
