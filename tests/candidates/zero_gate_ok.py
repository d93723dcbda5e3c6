"""Honest Triton kernel for zero_gate: relu(x) * gate, whatever the gate holds."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def gated_relu_kernel(x_ptr, gate_ptr, out_ptr, n, dim, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    gate = tl.load(gate_ptr + offsets % dim, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x < 0, 0.0, x) * gate, mask=mask)  # NaN stays NaN


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        gated_relu_kernel[(triton.cdiv(n, 1024),)](x, self.gate, out, n, x.shape[-1], BLOCK=1024)
        return out
