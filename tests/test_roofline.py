"""The roofline figures a verdict and the report carry: fractions of the right peak."""
from __future__ import annotations

import torch

from harness.roofline import roofline


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
