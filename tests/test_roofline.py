"""The speed figures a verdict and the report carry: fractions of the right peak, and a kernel slower
than eager said to be so."""
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


def test_a_kernel_slower_than_eager_is_said_so_before_and_after_it_is_accepted(tmp_path):
    """Accepted means correct, not faster: the review question and the report say when the kernel
    measured slower than the PyTorch code it replaces, and only then."""
    from nodes.questions import review_result
    from session_state import RunRecord

    timings = {"candidate": {"median_ms": 5.7, "iqr_ms": 0.01}, "eager": {"median_ms": 1.82, "iqr_ms": 0.01}}
    code = tmp_path / "k.py"
    code.write_text("# kernel\n")
    for speedup, said in ((0.32, True), (1.0, False), (1.8, False), (None, False)):
        verdict = {"timings": timings, "speedup_vs_eager": speedup, "summary": "ACCEPTED"}
        report = "\n".join(_timing_lines(verdict))
        run = RunRecord(workflow="kernelgen", index=1, dir=str(tmp_path), status="success", verdict=verdict,
                        code_path=str(code))
        question = review_result(run, "embedded").question
        assert ("slower than eager (0.32x)" in report) == said and ("akg-op rollback" in report) == said
        assert ("slower than eager (0.32x)" in question) == said, question
