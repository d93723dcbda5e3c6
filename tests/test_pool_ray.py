"""The Ray executor on a local 2-CPU Ray instance (127.0.0.1): an evolve search judged by Ray actors
gets the verdicts the local pool gives for the same candidates, and a killed actor loses no candidate.

One Ray instance and one RayPool serve the whole module (starting Ray costs seconds)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

import harness  # noqa: E402
import search  # noqa: E402
from generators.base import GenContext  # noqa: E402
from generators.embedded import EmbeddedGenerator  # noqa: E402
from harness.ray_executor import RayPool  # noqa: E402

HERE = Path(__file__).parent
RELU = HERE / "tasks_harness" / "relu.py"
JUDGE_SEED = 11  # the same judge inputs for both executors, so their verdicts can be compared
# What legitimately differs between two judgements of the same candidate: wall times, where it ran.
VARIABLE_FIELDS = {"phase_s", "log_tail", "worker"}


@pytest.fixture(scope="module")
def ray_pool():
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    try:
        with RayPool(cpu_workers=2) as pool:
            yield pool
    finally:
        ray.shutdown()


def _comparable(verdict: dict) -> dict:
    """The verdict without what describes the machine at that moment (free memory, peaks, timings
    of phases, which worker): the task's footprint stays."""
    kept = {k: v for k, v in verdict.items() if k not in VARIABLE_FIELDS}
    kept["memory"] = (verdict.get("memory") or {}).get("footprint")
    return kept


def test_evolve_on_ray_actors_gives_the_local_pools_verdicts(ray_pool, tmp_path):
    ctx = GenContext(op_name="relu", task_code=RELU.read_text(), device="cpu")
    generator = EmbeddedGenerator()
    first = generator.generate(ctx)
    assert first.ok, first.error
    options = search.parse_options("evolve", ["islands=2", "max_candidates=5", "max_concurrent=2", "proposal_retries=1",
                                              "require_timings=false", "executor=ray"])
    run_dir = tmp_path / "evolve_1"
    state = search.start_search("evolve", first.code, run_dir, options, seed_meta=first.meta)
    evaluate = search.pool_evaluator(ray_pool, RELU, run_dir / "scratch", seed=JUDGE_SEED, timeout_s=60)
    state = search.run(state, search.proposer_from_generator(generator, ctx), evaluate)

    judged = [c for c in state.candidates if c.verdict is not None]
    assert len(judged) >= 3 and state.candidates[0].accepted
    actors = {w["actor"] for w in ray_pool.workers()}
    assert all(c.verdict["worker"]["executor"] == "ray" and c.verdict["worker"]["actor"] in actors
               for c in judged)

    scratch = tmp_path / "local"
    scratch.mkdir()
    jobs = []
    for cand in judged:
        path = scratch / f"{cand.id}.py"
        path.write_text(cand.code)
        jobs.append({"task_path": str(RELU), "candidate_path": str(path), "seed": JUDGE_SEED, "timeout_s": 60})
    with harness.DevicePool(devices=["cpu", "cpu"]) as local:
        local_verdicts = [v.to_dict() for v in local.map(jobs)]
    assert [_comparable(c.verdict) for c in judged] == [_comparable(v) for v in local_verdicts]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["executor"] == "ray"
    assert {w["actor"] for w in summary["workers"]} <= actors
    assert sum(w["candidates"] for w in summary["workers"]) == len(judged)
    assert all(row["worker"]["actor"] in actors for row in summary["candidates"] if row["status"] != "duplicate")

    with pytest.raises(harness.HarnessInputError, match="defines no ModelNew"):  # bad input, as locally
        ray_pool.submit(str(RELU), str(HERE / "candidates" / "no_model_new.py")).result()


SLOW_RELU = '''
import time
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.where(x < 0, 0.0, x), mask=mask)  # NaN stays NaN, as in torch


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        time.sleep(2.0)  # long enough to be killed mid-job

    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        relu_kernel[(triton.cdiv(n, 1024),)](x, out, n, BLOCK=1024)
        return out
# variant {index}
'''


def test_a_killed_actor_loses_no_candidate(ray_pool, tmp_path):
    paths = []
    for index in range(4):
        path = tmp_path / f"slow_{index}.py"
        path.write_text(SLOW_RELU.format(index=index))
        paths.append(path)
    futures = [ray_pool.submit(str(RELU), str(path), timeout_s=60) for path in paths]
    deadline = time.monotonic() + 60
    while sum(f.running() for f in futures) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # both actors are inside a job now
    victim = ray_pool.actors()[0]
    victim_id = ray_pool.workers()[0]["actor"]
    ray.kill(victim, no_restart=True)

    verdicts = [f.result(timeout=240) for f in futures]
    assert [v.status for v in verdicts] == ["accepted"] * 4, [v.summary for v in verdicts]
    retried = [f.worker for f in futures if f.worker.get("retried_after")]
    assert retried and all(w["retried_after"][0]["actor"] == victim_id for w in retried)
    assert all(w["actor"] != victim_id for w in retried)
    # The lost actor was replaced: the pool is back to two workers.
    assert len(ray_pool.workers()) == 2 and victim_id not in {w["actor"] for w in ray_pool.workers()}
