"""Honest diag(a) @ B as a row scaling: the off-diagonal zeros are never multiplied, so an inf in B
gives inf in its own row only, where torch's dense product also has NaN (0 * inf) in the others."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def scale_rows_kernel(a_ptr, b_ptr, out_ptr, n_cols, stride_b, stride_out, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    scale = tl.load(a_ptr + row)
    values = tl.load(b_ptr + row * stride_b + cols, mask=mask)
    tl.store(out_ptr + row * stride_out + cols, scale * values, mask=mask)


class ModelNew(nn.Module):
    def forward(self, a, b):
        b = b.contiguous()
        out = torch.empty_like(b)
        scale_rows_kernel[(b.shape[0],)](a, b, out, b.shape[1], b.stride(0), out.stride(0),
                                         BLOCK=triton.next_power_of_2(b.shape[1]))
        return out
