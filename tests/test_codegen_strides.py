"""Row kernels (layer norm, RMS norm, softmax) read forward()'s inputs through their strides: a
transposed or sliced input is read in place, never copied by a `.contiguous()`, and gives the
reference's result (Triton interpreter, small shapes)."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from codegen.extern.loading import load_generated

TASK = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        {init}

    def forward(self, x):
        {forward}


def get_inputs():
    return [torch.randn(6, 300)]


def get_init_inputs():
    return [300]
'''

ROW_TASKS = {
    "layer_norm": ("self.norm = nn.LayerNorm(dim)", "return self.norm(x)"),
    "rms_norm": ("self.weight = nn.Parameter(torch.randn(dim))",
                 "return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight"),
    "softmax": ("pass", "return torch.softmax(x, dim=-1)"),
}

NON_CONTIGUOUS = {
    "transposed": lambda: torch.randn(300, 6).t(),
    "sliced": lambda: torch.randn(6, 900)[:, 1::3],
}


@pytest.mark.parametrize("strategy", ["persistent", "looped"])
@pytest.mark.parametrize("name", sorted(ROW_TASKS))
def test_row_kernels_read_non_contiguous_inputs_in_place(name, strategy):
    init, forward = ROW_TASKS[name]
    src = TASK.format(init=init, forward=forward)
    res = codegen.lower(src, tunables={"reduce.strategy": strategy, "reduce.BLOCK_N": 64})
    assert res.ok, res.reason
    assert "x.contiguous()" not in res.code and "x.stride(0), x.stride(1)" in res.code
    task, cand = load_generated(src, f"strides_task_{name}"), load_generated(res.code, f"strides_cand_{name}")
    torch.manual_seed(0)
    ref = task["Model"](300).eval()
    new = cand["ModelNew"](300).eval()
    new.load_state_dict(ref.state_dict())
    for layout, make in NON_CONTIGUOUS.items():
        x = make()
        assert not x.is_contiguous()
        with torch.no_grad():
            want, got = ref(x), new(x)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=lambda m: f"{layout}: {m}")


def test_pointwise_kernels_keep_their_inputs_contiguous():
    src = TASK.format(init="pass", forward="return torch.relu(x) * 2")
    res = codegen.lower(src)
    assert res.ok, res.reason
    assert "x = x.contiguous()" in res.code and ".stride(" not in res.code
