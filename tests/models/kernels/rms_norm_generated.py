"""ModelNew for RMSNorm: one Triton program per row; eps is the source file's EPS."""
import torch
import torch.nn as nn
import triton
import triton.language as tl

EPS = 1e-6


@triton.jit
def _rms_norm_rows(x_ptr, w_ptr, out_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    mean_square = tl.sum(x * x, axis=0) / n_cols
    w = tl.load(w_ptr + cols, mask=mask, other=1.0)
    tl.store(out_ptr + row * n_cols + cols, x / tl.sqrt(mean_square + eps) * w, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), 1.0))

    def forward(self, x):
        n_cols = x.shape[-1]
        rows = x.reshape(-1, n_cols).contiguous()
        out = torch.empty_like(rows)
        _rms_norm_rows[(rows.shape[0],)](rows, self.weight, out, n_cols, EPS,
                                         BLOCK=triton.next_power_of_2(n_cols))
        return out.reshape(x.shape)
