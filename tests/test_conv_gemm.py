"""A lone convolution without groups runs as an implicit GEMM on tensor cores (codegen.conv_gemm).

The direct kernel multiplied on CUDA cores: a standard 2-D convolution of the public benchmark,
(16, 16, 1024, 1024) -> 128 channels, ran at 64.5 ms on an H200 against cuDNN's 6.7 (0.10x).
Correctness runs in the interpreter; the kernel is also compiled for a Hopper GPU here, at the
benchmark size, so that a file that would not compile there, or spill, fails on a CPU machine.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from bench import hopper_compile
from tests.test_codegen import make_task, run_both

LARGE = Path(__file__).resolve().parent.parent / "bench" / "tasks_large" / "conv2d_standard.py"


@pytest.mark.parametrize("conv,inputs,tunables", [
    # strided, padded, dilated, with a bias; positions not a multiple of the tile's
    ("nn.Conv2d(12, 24, 3, stride=2, padding=2, dilation=2)", "[torch.randn(2, 12, 19, 23)]", None),
    # channels that leave partial tiles: 20 inputs in steps of 16, 20 outputs in a tile of 32
    ("nn.Conv2d(20, 20, (3, 5), padding=(1, 0), bias=False)", "[torch.randn(2, 20, 9, 11)]",
     {"conv_gemm.BLOCK_N": 32, "conv_gemm.BLOCK_K": 16, "conv_gemm.BLOCK_M": 64}),
    ("nn.Conv1d(16, 32, 5, stride=3, padding=1)", "[torch.randn(3, 16, 70)]", None),
    ("nn.Conv3d(16, 8, 3, padding=1)", "[torch.randn(2, 16, 5, 6, 7)]", None),
    # fewer channels than a step: (channel, tap) pairs a step, 27 and 3 * 105 of them
    ("nn.Conv2d(3, 16, 3, stride=2, padding=1)", "[torch.randn(2, 3, 13, 12)]", None),
    ("nn.Conv3d(3, 8, (3, 5, 7), padding=(1, 2, 0))", "[torch.randn(2, 3, 5, 7, 9)]", None),
    ("nn.Conv1d(1, 4, 9, dilation=2)", "[torch.randn(2, 1, 40)]", None),
])
def test_a_convolution_without_groups_is_one_implicit_gemm(tmp_path, conv, inputs, tunables):
    source = make_task("self.conv(x)", inputs, init=f"|self.conv = {conv}")
    res = run_both(tmp_path, source, tunables=tunables)
    assert res.kernels == ["conv_implicit_gemm_kernel: implicit GEMM convolution"]
    assert "conv_direct_kernel" not in res.code
    assert set(res.space) == {k for k in codegen.tunables.SPACE if k.startswith("conv_gemm.")}


def test_half_precision_inputs_multiply_on_the_tensor_cores_as_they_are(tmp_path):
    source = make_task("self.conv(x)", "[torch.randn(2, 16, 12, 12)]", init="|self.conv = nn.Conv2d(16, 32, 3).half()")
    res = run_both(tmp_path, source, dtype=torch.float16)
    assert "conv_implicit_gemm_kernel" in res.code


def test_the_switch_keeps_the_direct_kernel(tmp_path):
    source = make_task("self.conv(x)", "[torch.randn(2, 16, 10, 10)]", init="|self.conv = nn.Conv2d(16, 16, 3)")
    res = run_both(tmp_path, source, tunables={"conv_gemm.use": 0})
    assert res.kernels == ["conv_direct_kernel: direct convolution"]


@pytest.mark.skipif(not hopper_compile.available(), reason="Triton's CUDA backend (ptxas) is not installed")
def test_the_benchmark_size_kernel_compiles_for_hopper_on_tensor_cores_without_spilling(tmp_path):
    res = codegen.lower(LARGE.read_text())
    assert res.ok, res.reason
    generated = tmp_path / "conv2d_standard_generated.py"
    generated.write_text(res.code)
    kernels = hopper_compile.report_in_subprocess(LARGE, generated)["kernels"]
    assert [k["kernel"] for k in kernels] == ["conv_implicit_gemm_kernel"]
    assert kernels[0]["ok"] and kernels[0]["tensor_cores"], kernels
    assert kernels[0]["registers"] and kernels[0]["spill_bytes"] == 0, kernels  # registers enough at the default warps
