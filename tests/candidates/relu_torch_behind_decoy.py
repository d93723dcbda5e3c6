"""Cheat: launches a decoy kernel on a scratch buffer, returns torch.relu."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x < 0, 0.0, x), mask=mask)  # NaN stays NaN, as in torch


class ModelNew(nn.Module):
    def forward(self, x):
        scratch = torch.empty(1024, device=x.device)
        relu_kernel[(1,)](scratch, scratch, 1024, BLOCK=1024)
        return torch.relu(x)
