"""The harness on a GPU: timings agree with triton's do_bench, side streams are counted, a CUDA fault
does not leak into the next job."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import harness
from harness.task_loading import load_module

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

HERE = Path(__file__).parent
TASKS, CANDIDATES = HERE / "tasks_harness", HERE / "candidates"


def _model_and_inputs(task_name: str, candidate_name: str):
    task = load_module(str(TASKS / f"{task_name}.py"), "task")
    new = load_module(str(CANDIDATES / f"{candidate_name}.py"), "candidate")
    torch.manual_seed(0)
    inputs = [x.cuda() for x in task.get_inputs()]
    return new.ModelNew(*task.get_init_inputs()).cuda(), inputs


@pytest.mark.parametrize("task_name,candidate_name", [("relu_large", "relu_ok"), ("softmax_large", "softmax_ok")])
def test_timing_agrees_with_do_bench(task_name, candidate_name):
    import triton.testing

    verdict = harness.verify(str(TASKS / f"{task_name}.py"), str(CANDIDATES / f"{candidate_name}.py"),
                             device="cuda")
    assert verdict.accepted, verdict.summary
    ours = verdict.timings["candidate"]["median_ms"]
    model, inputs = _model_and_inputs(task_name, candidate_name)
    theirs = triton.testing.do_bench(lambda: model(*inputs), return_mode="median")
    print(f"{task_name}: harness {ours:.4f} ms, do_bench {theirs:.4f} ms; {verdict.summary}")
    # do_bench launches back to back, so where the host's launch outlasts the kernel it measures the
    # host; the verdict must then say so (the harness's figure is the device's)
    launch_bound = any(flag.startswith("launch-bound") for flag in verdict.flags)
    assert abs(ours - theirs) / theirs < 0.10 or (launch_bound and theirs > ours), verdict.flags
    assert verdict.timings["eager"]["median_ms"] > 0 and verdict.speedup_vs_eager > 0
    # The host's launch cost is reported beside the device time, for candidate and baselines.
    assert verdict.timings["candidate"]["launch_us"] > 0 and verdict.timings["eager"]["launch_us"] > 0
    assert 0 < verdict.roofline["bandwidth_fraction"] < 1.2


def test_side_stream_work_is_timed():
    # 1 GiB: the side stream's figure is the synchronised end minus the host's measured wake-up,
    # which on a 0.2 ms kernel alone moved it by 15 %
    relu_1gb = str(TASKS / "relu_1gb.py")
    main = harness.verify(relu_1gb, str(CANDIDATES / "relu_ok.py"), device="cuda")
    side = harness.verify(relu_1gb, str(CANDIDATES / "relu_side_stream.py"), device="cuda")
    assert main.accepted and side.accepted, side.summary
    main_ms, side_ms = main.timings["candidate"]["median_ms"], side.timings["candidate"]["median_ms"]
    print(f"main stream {main_ms:.4f} ms, side stream {side_ms:.4f} ms")
    # The same kernel on a side stream that nobody joins must cost what it costs on the main stream.
    assert abs(side_ms - main_ms) / main_ms < 0.15
    # and the verdict says which of its two figures it reports
    assert any(f.startswith("timed to the device synchronise") for f in side.flags), side.flags
    assert not any(f.startswith("timed to the device synchronise") for f in main.flags), main.flags


def test_cuda_fault_does_not_affect_the_next_job():
    relu = str(TASKS / "relu.py")
    faulty = harness.verify(relu, str(CANDIDATES / "relu_illegal_address.py"), device="cuda", measure=False)
    assert faulty.status in ("runtime_error", "crash"), faulty.summary
    assert "cuda_fault" in faulty.flags
    after = harness.verify(relu, str(CANDIDATES / "relu_ok.py"), device="cuda", measure=False)
    assert after.accepted, after.summary


REDTEAM = CANDIDATES / "redteam"


def test_a_grid_capped_at_the_tasks_own_size_is_caught_on_a_gpu_too():
    # 16 programs cover the small task exactly; only a larger second shape shows the cap
    verdict = harness.verify(str(TASKS / "relu.py"), str(REDTEAM / "relu_capped_grid.py"), device="cuda",
                             measure=False)
    assert verdict.status == "mismatch" and "a second shape" in verdict.summary, verdict.summary


@pytest.mark.parametrize("name,status,reason", [
    ("relu_late_cache", "mismatch", "timed"),                 # honest until timed, then cached
    ("relu_watched_only", "mismatch", "differs from the reference"),  # honest only under a dispatch mode
    ("relu_forged_timing", "cheat", "is impossible"),        # rewrites its own timing
])
def test_cheats_under_timing_are_rejected(name, status, reason):
    verdict = harness.verify(str(TASKS / "relu_large.py"), str(REDTEAM / f"{name}.py"), device="cuda")
    print(name, verdict.summary)
    assert verdict.status == status and reason in verdict.summary, verdict.summary


def test_the_sealed_judge_is_sandboxed_and_shares_gpu_tensors_in_place():
    verdict = harness.verify(str(TASKS / "relu_large.py"), str(CANDIDATES / "relu_ok.py"), device="cuda")
    print(verdict.summary, verdict.sandbox, verdict.phase_s)
    assert verdict.accepted, verdict.summary
    assert set(verdict.input_variants) == {"scaled", "shifted", "special"}
    assert verdict.phase_s["timing"] > 0 and verdict.phase_s["baselines"] > 0  # the baselines after the candidate


def test_a_task_whose_inputs_ignore_the_seed_is_still_timed_and_accepted():
    # timing draws its alternate input set again rather than hold two sets; where the seed does not
    # reproduce it, both trials run again on what will be timed
    verdict = harness.verify(str(TASKS / "relu_unseeded.py"), str(CANDIDATES / "relu_ok.py"), device="cuda")
    assert verdict.accepted, verdict.summary
    assert verdict.timings["candidate"]["median_ms"] > 0


def test_a_candidate_that_keeps_the_gpu_busy_while_the_baselines_are_timed_gains_no_speedup():
    # its thread waits for the timed calls to end, then spins the GPU; the baselines are timed only
    # once its process is gone (the contention check leaves out the job's own processes)
    honest = harness.verify(str(TASKS / "relu_large.py"), str(CANDIDATES / "relu_ok.py"), device="cuda")
    verdict = harness.verify(str(TASKS / "relu_large.py"), str(REDTEAM / "relu_slows_baselines.py"), device="cuda")
    print(honest.summary, verdict.summary)
    assert not verdict.accepted or verdict.speedup_vs_eager < 1.3 * honest.speedup_vs_eager, verdict.summary
