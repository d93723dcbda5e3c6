"""Memory and trust on a GPU (issue 13): a multi-GB task judged within ~3 footprints of device
memory, and a timing taken while another process works on the GPU is flagged."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import harness

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

HERE = Path(__file__).parent
TASKS, CANDIDATES = HERE / "tasks_harness", HERE / "candidates"
LARGE = HERE.parent / "bench" / "tasks_large"


def test_a_multi_gb_task_is_judged_within_a_few_copies_of_its_footprint():
    verdict = harness.verify(str(LARGE / "act_relu.py"), str(CANDIDATES / "relu_ok.py"), device="cuda",
                             timeout_s=600)
    assert verdict.accepted, verdict.summary
    footprint = verdict.memory["footprint"]["total_bytes"]
    assert footprint == 2 * 4096 * 393216 * 4
    # the judge's own allocations (the candidate process holds its own copy besides): about three
    # copies of the footprint plus the reference's own result (measured on an H100: 40.3 GB for a
    # 12.9 GB footprint)
    reference_peak = verdict.memory["footprint"]["output_bytes"] + verdict.memory["footprint"]["intermediate_bytes"]
    assert 0 < verdict.memory["peak_device_bytes"] <= 3 * footprint + reference_peak, verdict.memory
    assert isinstance(verdict.timings["contended"], bool), verdict.timings  # alone unless the GPU is shared


BUSY_GPU = ("import time, torch\n"
            "x = torch.randn(4096, 4096, device='cuda')\n"
            "print('busy', flush=True)\n"
            "end = time.time() + {seconds}\n"
            "while time.time() < end:\n"
            "    x = (x @ x).tanh_()\n"
            "torch.cuda.synchronize()\n")


def test_a_timing_taken_while_another_process_uses_the_gpu_is_flagged():
    busy = subprocess.Popen([sys.executable, "-c", BUSY_GPU.format(seconds=120)], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout.readline().strip() == "busy"
        verdict = harness.verify(str(TASKS / "relu_large.py"), str(CANDIDATES / "relu_ok.py"), device="cuda")
    finally:
        busy.kill()
        busy.wait()
    assert verdict.accepted, verdict.summary
    contention = verdict.timings["contention"]
    assert contention["checked"], contention
    assert verdict.timings["contended"] is True and contention["attempts"] == 2
    assert any(flag.startswith("contended:") for flag in verdict.flags)
