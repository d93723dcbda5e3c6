"""What the README promises about options, background runs and `make bench`, and what a run leaves
in the checkout (issue 14, point 8)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from search import parse_options
from tests.conftest import REPO
from tests.test_cli import akg, session_id_of


def test_time_budget_accepts_the_documented_name_and_durations():
    assert parse_options("evolve", ["time_budget=25m"]).time_budget_s == 1500.0
    assert parse_options("adaptive_search", ["time_budget=1h"]).time_budget_s == 3600.0


def test_cli_accepts_time_budget_as_the_readme_writes_it(tmp_path, cli_env):
    result = akg(["run", "softmax (32, 256) fp32", "--workflow", "evolve", "--option", "time_budget=25m",
                  "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Use these parameters?" in result.stdout  # started: stopped at the first question


def test_background_without_yes_says_it_stops_at_the_first_question(tmp_path, cli_env):
    result = akg(["run", "relu (16, 64) fp32", "--background", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "until its next question (add --yes to run to the end)" in result.stdout
    session = session_id_of(result)
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline:
        line = akg(["status", session], cli_env, tmp_path).stdout
        if "waiting at" in line:
            break
        time.sleep(1)
    assert "waiting at confirm_params" in line  # what the message said it would do


def _ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0


def test_make_bench_writes_to_an_untracked_path_by_default():
    dry = subprocess.run(["make", "-n", "bench"], cwd=REPO, capture_output=True, text=True)
    line = next(line for line in dry.stdout.splitlines() if "bench.run_suite" in line)
    out = line.split("--out", 1)[1].split()[0]
    assert not out.startswith("bench/results/") and _ignored(out), line


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_suite_on_a_cpu_machine_stops_at_once(tmp_path):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bench.run_suite", "--device", "cuda", "--out",
                             str(tmp_path / "table.md")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no CUDA device" in result.stderr
    assert not (tmp_path / "table.md").exists() and time.monotonic() - started < 60


def test_langgraph_dev_state_is_ignored():
    assert _ignored(".langgraph_api/") and _ignored(".langgraph_api/store.pckl")
