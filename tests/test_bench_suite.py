"""bench/run_suite.py --via-cli: the suite run through the product as a user runs it (`akg-op run
--task T --yes`), one task at a time, tabulated from each session's final verdict."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

TASKS = REPO / "tests" / "tasks_harness"


def test_the_suite_through_akg_op_run_tabulates_each_sessions_verdict_and_keeps_its_kernel(tmp_path, cli_env):
    rows_file, table_file = tmp_path / "rows.json", tmp_path / "suite.md"
    done = subprocess.run([sys.executable, "-m", "bench.run_suite", "--device", "cpu", "--tasks", str(TASKS),
                           "--only", "relu", "--only", "huge_literal_sizes", "--via-cli", str(tmp_path / "sessions"),
                           "--keep", str(tmp_path / "kernels"), "--json", str(rows_file), "--out", str(table_file)],
                          cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["task"]: row for row in json.loads(rows_file.read_text())}
    assert rows["relu"]["verdict"] == "accepted", rows["relu"]
    assert (tmp_path / "kernels" / "relu_generated.py").is_file()
    assert list((tmp_path / "sessions" / "relu").glob("*/report.md"))  # the product's own session, report included
    # a task the product refuses is that task's row, with the product's one-line reason
    assert rows["huge_literal_sizes"]["verdict"] == "error", rows["huge_literal_sizes"]
    assert "akg-op run exited" in rows["huge_literal_sizes"]["detail"]
    assert "| relu | accepted |" in table_file.read_text()


def test_the_suite_through_akg_op_run_refuses_options_a_user_run_does_not_have(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.run_suite", "--device", "cpu", "--via-cli", str(tmp_path),
                           "--no-measure"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--via-cli runs the product as a user does" in done.stderr


def test_a_sweep_refuses_a_knob_the_tasks_file_does_not_have():
    """bench.extern_sweep: a try whose key belongs to another family (attention's on a pool) would
    time the defaults under that name; it is reported instead."""
    from bench.extern_sweep import lower_with

    pool = REPO / "bench" / "tasks_large" / "pool_max2d.py"
    foreign = lower_with(pool, {"attn.TMA": 0, "pointwise.pool_BLOCK": 256}, target="cpu")
    assert not foreign.ok and foreign.reason == "not tunables of this task: attn.TMA"
    own = lower_with(pool, {"pointwise.pool_BLOCK": 256}, target="cpu")
    assert own.ok and "POOL_BLOCK = 256" in own.code
