"""The roofline figures a verdict and the report carry: fractions of the right peak."""
from __future__ import annotations

import torch

from harness.roofline import roofline
from nodes.report import _timing_lines


def figures(tflops: float, dtype=torch.float32) -> dict:
    return roofline(traffic_bytes=1 << 30, flops=int(tflops * 1e12 / 1e3), median_ms=1.0,
                    device_name="NVIDIA H200", dtype=dtype)


def test_fp32_work_on_cuda_cores_is_measured_against_their_peak():
    slow = figures(30.0)
    assert slow["peak_tflops"] == 66.9 and slow["compute_fraction"] == round(30 / 66.9, 4)


def test_fp32_work_faster_than_the_cuda_cores_is_measured_against_the_tensor_cores():
    # public conv task 55 ran at 138.8 TFLOP/s of fp32 work in TF32: it was reported as 207 %
    fast = figures(138.8)
    assert fast["peak_tflops"] == 494.7 and 0 < fast["compute_fraction"] < 1


def test_half_precision_keeps_its_own_peak():
    assert figures(500.0, torch.float16)["peak_tflops"] == 989.4


def test_the_report_gives_the_fractions_of_peak():
    timings = {"candidate": {"median_ms": 1.0, "iqr_ms": 0.01}}
    lines = "\n".join(_timing_lines({"timings": timings, "roofline": figures(138.8)}))
    assert "1074 GB/s (22% of peak)" in lines  # 1 GiB in 1 ms against the H200's 4.8 TB/s
    assert "138.8 TFLOP/s (28% of the 494.7 TFLOP/s peak)" in lines
