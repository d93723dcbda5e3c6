"""Partial fallback (class 2): both reductions of the layer norm (mean, variance) in torch; only
the normalisation is a Triton kernel."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def normalize_kernel(x_ptr, mean_ptr, rstd_ptr, w_ptr, b_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask)
    mean = tl.load(mean_ptr + row)
    rstd = tl.load(rstd_ptr + row)
    w = tl.load(w_ptr + cols, mask=mask)
    b = tl.load(b_ptr + cols, mask=mask)
    tl.store(out_ptr + row * n_cols + cols, (x - mean) * rstd * w + b, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = x.contiguous()
        mean = x.mean(dim=-1).contiguous()
        rstd = torch.rsqrt(x.var(dim=-1, unbiased=False) + self.norm.eps).contiguous()
        out = torch.empty_like(x)
        rows, cols = x.shape
        normalize_kernel[(rows,)](x, mean, rstd, self.norm.weight, self.norm.bias, out, cols,
                                  BLOCK=triton.next_power_of_2(cols))
        return out
