"""Index arithmetic the generator keeps off the per-element path (an integer division per element
by a run-time size made benchmark-size pools and losses 1.4-4x slower on an H100; see
bench/results/h100_large_speed_studies.md). Each case is also run against torch."""
from __future__ import annotations

import os
import re

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch

import codegen
from tests.test_codegen import make_task


def _run(source: str, *inputs):
    res = codegen.lower(source)
    assert res.ok, res.reason
    ns: dict = {}
    exec(source, ns)
    gen: dict = {}
    exec(compile(res.code, "generated", "exec"), gen)
    torch.testing.assert_close(gen["ModelNew"]()(*inputs), ns["Model"]()(*inputs), rtol=1e-5, atol=1e-5)
    return res.code


def _divided(code: str, index: str) -> bool:
    return re.search(rf"\b{index}\b\s*(//|%)", code) is not None


def test_a_pool_decomposes_its_index_once_per_row_not_per_element():
    source = make_task("F.avg_pool3d(x, 3, 2, 1)", "[torch.randn(2, 3, 6, 9, 80)]")
    code = _run(source, torch.randn(2, 3, 6, 9, 80))
    assert _divided(code, "rows") and not _divided(code, "offs") and not _divided(code, "cols")


def test_a_loss_over_row_statistics_finds_each_rows_values_without_a_division():
    # enough rows to fill a GPU one program a row (fewer rows split each row into chunks instead)
    source = make_task("F.kl_div(torch.log_softmax(x, -1), t, reduction='batchmean')",
                       "[torch.randn(600, 1024), torch.randn(600, 1024).softmax(-1)]", sig="x, t")
    x, t = torch.randn(600, 1024), torch.randn(600, 1024).softmax(-1)
    code = _run(source, x, t)
    # each row reduced in one kernel (its statistics, then its terms), the rows summed after
    assert not _divided(code, "cols")
