"""Honest partial fusion: the matmul stays in torch (an allowed extern), bias + relu run in Triton.
The weights are the reference's: the harness loads its state_dict (same keys and shapes)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def bias_relu_kernel(x_ptr, bias_ptr, out_ptr, n, cols, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    b = tl.load(bias_ptr + offsets % cols, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x + b < 0, 0.0, x + b), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        product = torch.mm(x, self.linear.weight.t()).contiguous()
        out = torch.empty_like(product)
        n = product.numel()
        bias_relu_kernel[(triton.cdiv(n, 1024),)](product, self.linear.bias, out, n, product.shape[1], BLOCK=1024)
        return out
