"""Computes (x + 3e4) - 3e4 in float64: more exact than the fp32 reference."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def offset_roundtrip_kernel(x_ptr, y_ptr, n_elements, BLOCK: tl.constexpr, ACC: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(ACC)
    y = (x + 30000.0) - 30000.0
    tl.store(y_ptr + offsets, y.to(tl.float32), mask=mask)


class ModelNew(nn.Module):
    compute_dtype = tl.float64

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        offset_roundtrip_kernel[(triton.cdiv(n, 1024),)](x, y, n, BLOCK=1024, ACC=self.compute_dtype)
        return y
