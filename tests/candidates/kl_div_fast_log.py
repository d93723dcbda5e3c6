"""Honest KL divergence whose log carries the relative error of a GPU's fast log2 (2**-22), as
Triton's tl.log has on NVIDIA GPUs. Right on the task's inputs; on inputs +1000 its error is far
above the fp32 reference's, which there keeps no correct digit either."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kl_div_rows_kernel(p_ptr, t_ptr, row_sums_ptr, n_cols, row_stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    p = tl.load(p_ptr + row * row_stride + cols, mask=mask, other=1.0)
    t = tl.load(t_ptr + row * row_stride + cols, mask=mask, other=0.0)
    log_p = tl.log(p) * (1.0 + 2.0 ** -22)
    terms = tl.where(t > 0, t * tl.log(t) - t * log_p, 0.0)
    tl.store(row_sums_ptr + row, tl.sum(terms, axis=0))


@triton.jit
def batch_mean_kernel(row_sums_ptr, out_ptr, n_rows, BLOCK: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    total = tl.sum(tl.load(row_sums_ptr + rows, mask=rows < n_rows, other=0.0), axis=0)
    tl.store(out_ptr, total / n_rows)


class ModelNew(nn.Module):
    def forward(self, predictions, targets):
        predictions, targets = predictions.contiguous(), targets.contiguous()
        rows, cols = predictions.shape
        row_sums = torch.empty(rows, device=predictions.device, dtype=torch.float32)
        out = torch.empty((), device=predictions.device, dtype=torch.float32)
        kl_div_rows_kernel[(rows,)](predictions, targets, row_sums, cols, predictions.stride(0),
                                    BLOCK=triton.next_power_of_2(cols))
        batch_mean_kernel[(1,)](row_sums, out, rows, BLOCK=triton.next_power_of_2(rows))
        return out
