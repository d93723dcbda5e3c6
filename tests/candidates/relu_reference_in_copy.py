"""Cheat: computes with torch.relu, then 'does the work' in a Triton copy kernel."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def copy_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(dst_ptr + offsets, tl.load(src_ptr + offsets, mask=mask), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        result = torch.relu(x)
        out = torch.empty_like(result)
        copy_kernel[(triton.cdiv(x.numel(), 1024),)](result, out, x.numel(), BLOCK=1024)
        return out
