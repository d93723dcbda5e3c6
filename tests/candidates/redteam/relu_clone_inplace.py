"""Honest (class 5): copies the input, then applies relu in place on the copy with a Triton kernel."""
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



class ModelNew(nn.Module):
    def forward(self, x):
        out = x.contiguous().clone()
        return triton_relu(out, out=out)
