"""Harness overhead per candidate and pool throughput.

    python -m bench.harness_overhead --device cpu  --jobs 20
    python -m bench.harness_overhead --device cuda --jobs 20

Overhead is the wall time of verify() for a trivial candidate (a relu on the small relu task), so
nearly all of it is the harness: fork, load, 5 trials, anti-cheat replay. Prints one JSON line per
measurement as soon as it is taken, so a run cut short still reports what it measured."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import harness
from harness.sandbox import Worker

TESTS = Path(__file__).resolve().parent.parent / "tests"
RELU = str(TESTS / "tasks_harness" / "relu.py")
SOFTMAX = str(TESTS / "tasks_harness" / "softmax.py")
RELU_LARGE = str(TESTS / "tasks_harness" / "relu_large.py")
CANDIDATE = str(TESTS / "candidates" / "relu_ok.py")
SOFTMAX_CANDIDATE = str(TESTS / "candidates" / "softmax_ok.py")


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def emit(key: str, value) -> None:
    print(json.dumps({key: value}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--pool-workers", type=int, default=2, help="CPU workers when no GPU is used")
    args = parser.parse_args()
    device = "cuda:0" if args.device == "cuda" else args.device
    emit("device", device)

    worker = Worker(device)
    emit("worker_start_s", round(seconds(lambda: worker.call("os:getpid", {})), 3))
    emit("worker_warm", worker.warm)
    empty_jobs = [seconds(lambda: worker.call("os:getpid", {})) for _ in range(10)]
    emit("empty_job_s", round(statistics.median(empty_jobs), 4))
    walls = []
    for _ in range(args.jobs):
        walls.append(seconds(lambda: harness.api.verify_on(worker, RELU, CANDIDATE, measure=False)))
    emit("verify_no_timing_s", {"first": round(walls[0], 3), "median": round(statistics.median(walls[1:]), 3)})
    if device != "cpu":
        verdict = None

        def measured():
            nonlocal verdict
            verdict = harness.api.verify_on(worker, RELU_LARGE, CANDIDATE)
        emit("verify_with_timing_s", [round(seconds(measured), 2) for _ in range(2)])
        emit("timed_summary", verdict.summary)
        emit("phase_s", getattr(verdict, "phase_s", None))
    worker.close()

    devices = None if device != "cpu" else ["cpu"] * args.pool_workers
    jobs = [{"task_path": RELU, "candidate_path": CANDIDATE, "measure": False} if i % 2 else
            {"task_path": SOFTMAX, "candidate_path": SOFTMAX_CANDIDATE, "measure": False}
            for i in range(args.jobs)]
    with harness.DevicePool(devices=devices) as pool:
        pool.map(jobs[:len(pool.devices)])  # start every worker before the clock runs
        wall = seconds(lambda: pool.map(jobs))
        emit("pool", {"workers": pool.devices, "jobs": len(jobs), "wall_s": round(wall, 2),
                      "candidates_per_minute": round(60 * len(jobs) / wall, 1)})


if __name__ == "__main__":
    main()
