"""The local DevicePool: a search's candidates spread over its workers; a candidate that crashes or
hangs costs only its own job, and a worker whose server is lost is restarted for the next job."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import harness

HERE = Path(__file__).parent
RELU = str(HERE / "tasks_harness" / "relu.py")


def candidate(name: str) -> str:
    return str(HERE / "candidates" / f"{name}.py")


def _wait_until_dead(pid: int, timeout_s: float = 10.0) -> None:
    """Until the killed server is a zombie (its worker reaps it when it looks next)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (OSError, IndexError):
            return
        time.sleep(0.05)


def test_pool_spreads_jobs_and_survives_crashes_hangs_and_a_lost_server():
    with harness.DevicePool(devices=["cpu", "cpu"]) as pool:
        names = ["hang", "segfault", "relu_ok", "exits", "relu_ok", "relu_ok"]
        futures = [pool.submit(RELU, candidate(name), timeout_s=4) for name in names]
        verdicts = [f.result() for f in futures]
        assert [v.status for v in verdicts] == ["timeout", "crash", "accepted", "crash", "accepted", "accepted"]
        used = {f.worker["worker"] for f in futures}
        assert used == {"local-0", "local-1"}  # both workers took jobs while one was stuck
        assert all(f.worker["executor"] == "local" and f.worker["device"] == "cpu" for f in futures)

        # A server killed from outside (OOM killer, operator) is replaced by the next job's worker.
        before = {w["worker"]: w["pid"] for w in pool.workers()}
        os.kill(before["local-0"], signal.SIGKILL)
        _wait_until_dead(before["local-0"])
        again = [pool.submit(RELU, candidate("relu_ok"), timeout_s=30) for _ in range(4)]
        assert [f.result().status for f in again] == ["accepted"] * 4, [f.result().summary for f in again]
        after = {w["worker"]: w["pid"] for w in pool.workers()}
        assert after["local-0"] not in (None, before["local-0"])
        assert after["local-1"] == before["local-1"]  # the other worker was never disturbed


def test_an_unreachable_ray_cluster_is_a_one_line_error(monkeypatch):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from harness.ray_executor import RayPool

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there: no minutes of retries
    with pytest.raises(harness.HarnessInputError, match="no Ray cluster answers at 127.0.0.1:1"):
        RayPool()


def test_the_pools_threads_parse_candidate_files_one_at_a_time(monkeypatch, tmp_path):
    """CPython 3.11's ast keeps its recursion depth in state shared by threads: two parses
    interleaved can fail with "AST constructor recursion depth mismatch" (it failed this module's
    pool test once). The pool's threads check their candidates' files through one lock."""
    import ast
    import threading

    from harness.api import check_candidate_file

    inside, most = [0], [0]
    real_parse = ast.parse

    def slow_parse(*args, **kwargs):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for every other thread to arrive
        inside[0] -= 1
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", slow_parse)
    threads = [threading.Thread(target=check_candidate_file, args=(candidate("relu_ok"),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
