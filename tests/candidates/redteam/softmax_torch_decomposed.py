"""Partial fallback (class 2): softmax decomposed into amax/exp/sum/div in torch, the result copied
by a Triton kernel."""
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
        shifted = x - x.amax(dim=1, keepdim=True)
        numerator = shifted.exp()
        work = numerator / numerator.sum(dim=1, keepdim=True)
        out = torch.empty_like(work)
        copy_kernel[(triton.cdiv(x.numel(), 1024),)](work, out, x.numel(), BLOCK=1024)
        return out
