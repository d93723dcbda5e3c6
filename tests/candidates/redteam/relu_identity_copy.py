"""Cheat twin of relu_clone_inplace (class 5): returns a copy of the input (relu is the identity on non-negative inputs) and launches a token kernel on a scratch buffer."""
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
        scratch = torch.empty(16, device=x.device)
        relu_kernel[(1,)](scratch, scratch, 16, BLOCK=16)
        return x.clone()
