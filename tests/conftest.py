"""Shared fixtures: every test gets its own AKG_OP_HOME, so no test sees another's sessions,
results store or environment cache, and nothing touches the user's ~/.akg_op."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def interpreter_as_the_judge_runs_it():
    """Kernels the tests run in-process under TRITON_INTERPRET run as the judge's CPU worker runs
    them (harness.interpreter: reductions folded in halves, no discarded overflow checks)."""
    from harness.interpreter import interpret_like_the_gpu
    interpret_like_the_gpu()


@pytest.fixture(autouse=True)
def akg_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("akg_home")
    monkeypatch.setenv("AKG_OP_HOME", str(home))
    # Tests pick the generator explicitly; a developer's OPENAI_* variables must not leak in.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AKG_OP_LLM", "AKG_OP_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def cli_env(akg_home):
    """Environment for running `akg-op` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["AKG_OP_HOME"] = str(akg_home)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"  # rich wraps at the terminal width; keep lines whole for assertions
    return env


def akg_op_command() -> list[str]:
    return [sys.executable, str(REPO / "cli.py")]
