"""A sum linear in its rows' log_softmax statistics (KL divergence, soft cross-entropy) is computed
in one read of each row (codegen/row_sums.py): the statistics and the stat-free sums accumulate in
one column loop, the row constants are applied after it."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

from tests.test_codegen import make_task, run_both

# 20000 columns: past the longest row a kernel keeps in registers, so the rows are looped
ROWS = "[torch.randn(3, 20000) * SCALE + SHIFT, torch.randn(3, 20000).softmax(-1)]"
LINEAR = {
    "kl_batchmean": "F.kl_div(torch.log_softmax(x, dim=-1), y, reduction='batchmean')",
    "soft_cross_entropy_per_row": "-(y * torch.log_softmax(x, dim=-1)).sum(-1)",
    "scaled_total": "(y * torch.log_softmax(x, dim=-1)).sum() * 0.5",
    "cross_entropy_probability_targets": "F.cross_entropy(x, y)",
    "scaled_terms": "(0.5 * torch.log_softmax(x, dim=-1) * y / 3.0).sum(-1)",
}


# many rows in practice (8192 of a benchmark's KL); here 3, so the statistics' split for few long rows
# is turned off
UNSPLIT = {"reduce.split_programs": 0}


def column_loops(code: str) -> int:
    return code.count("for col_start in range(")


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (10000.0, 1.0), (0.0, 30.0)],
                         ids=["plain", "mean_10000", "times_30"])
@pytest.mark.parametrize("name", sorted(LINEAR))
def test_a_sum_linear_in_its_rows_statistics_reads_each_row_once(tmp_path, name, shift, scale):
    src = make_task(LINEAR[name], ROWS, sig="x, y", consts=f"SHIFT = {shift}\nSCALE = {scale}")
    res = run_both(tmp_path, src, tunables=UNSPLIT)
    assert column_loops(res.code) == 1, res.code


def test_a_half_precision_log_softmax_rounded_before_its_sum_keeps_two_reads(tmp_path):
    """In fp16 the reference rounds each log-probability to half before the product: not linear,
    so the rewrite leaves it, and the kernel rounds as the reference does."""
    src = make_task(LINEAR["soft_cross_entropy_per_row"], ROWS, sig="x, y", consts="SHIFT = 0.0\nSCALE = 1.0")
    res = run_both(tmp_path, src, tunables=UNSPLIT, dtype=torch.float16)
    assert column_loops(res.code) == 2


def test_a_per_column_weight_beside_the_statistics_stays_right(tmp_path):
    src = make_task("(self.w * torch.log_softmax(x, dim=-1) + y * torch.log_softmax(x, dim=-1)).sum(-1)", ROWS,
                    sig="x, y", consts="SHIFT = 0.0\nSCALE = 1.0",
                    init="|self.w = nn.Parameter(torch.rand(20000))")
    run_both(tmp_path, src, tunables=UNSPLIT)


def test_a_three_dim_kl_sum_reads_each_row_once(tmp_path):
    src = make_task("F.kl_div(torch.log_softmax(x, -1), y, reduction='sum')",
                    "[torch.randn(2, 3, 20000), torch.randn(2, 3, 20000).softmax(-1)]", sig="x, y")
    res = run_both(tmp_path, src, tunables=UNSPLIT)
    assert column_loops(res.code) == 1


@pytest.mark.parametrize("forward", ["(y * torch.log_softmax(x, dim=-1) ** 2).sum(-1)",
                                     "(torch.softmax(x, dim=-1) * y).sum(-1)"],
                         ids=["squared_log_softmax", "softmax_weighted"])
def test_a_sum_not_linear_in_its_statistics_keeps_two_reads_and_stays_right(tmp_path, forward):
    src = make_task(forward, ROWS, sig="x, y", consts="SHIFT = 0.0\nSCALE = 1.0")
    res = run_both(tmp_path, src, tunables=UNSPLIT)
    assert column_loops(res.code) == 2


def test_few_long_rows_keep_their_split_statistics_and_stay_right(tmp_path):
    """Three rows: the statistics are split over many programs (partials), which the one-read rewrite
    leaves alone."""
    src = make_task(LINEAR["kl_batchmean"], ROWS, sig="x, y", consts="SHIFT = 0.0\nSCALE = 1.0")
    res = run_both(tmp_path, src)
    assert any("partials" in k for k in res.kernels)
