"""The CLI end to end, each command in its own process, on the embedded generator (no LLM, no GPU)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, akg_op_command

REQUEST = "Generate a relu kernel, input (64, 512), fp32"


def akg(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(akg_op_command() + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def session_id_of(result: subprocess.CompletedProcess) -> str:
    match = re.search(r"session ([0-9a-f]{12})", result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def default_of(result: subprocess.CompletedProcess) -> str:
    return re.search(r"\(default: ([^)]+)\)", result.stdout).group(1)


def independent_relu_check(kernel: Path, env: dict) -> None:
    """Load the generated ModelNew in a fresh interpreter and compare with torch.relu."""
    script = (
        "import importlib.util, torch, sys\n"
        f"spec = importlib.util.spec_from_file_location('k', {str(kernel)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "x = torch.randn(37, 129)\n"
        "torch.testing.assert_close(m.ModelNew()(x), torch.relu(x))\n"
        "print('independent check ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**env, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=300)
    assert "independent check ok" in out.stdout, out.stderr


def test_yes_end_to_end_writes_task_kernel_and_report(tmp_path, cli_env):
    result = akg(["run", REQUEST, "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
                 cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    kernel = tmp_path / "o" / "relu_generated.py"
    session_dir = next((tmp_path / "w").glob("op_relu_*"))
    assert (session_dir / "relu.py").exists() and (session_dir / "report.md").exists()
    assert "@triton.jit" in kernel.read_text()
    independent_relu_check(kernel, cli_env)
    listing = akg(["sessions"], cli_env, tmp_path)
    assert session_id_of(result) in listing.stdout and "done" in listing.stdout


def test_each_gate_answered_from_a_new_process(tmp_path, cli_env):
    first = akg(["run", REQUEST, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")], cli_env, tmp_path)
    sid = session_id_of(first)
    assert first.returncode == 0 and "Use these parameters?" in first.stdout
    step, gates = first, []
    while "answer with: akg-op resume" in step.stdout:
        gates.append(default_of(step))
        step = akg(["resume", sid, "--answer", default_of(step)], cli_env, tmp_path)
        assert step.returncode == 0, step.stdout + step.stderr
    assert gates == ["yes", "yes", "kernelgen", "accept"]  # the printed defaults, in gate order
    assert "done" in step.stdout
    independent_relu_check(tmp_path / "o" / "relu_generated.py", cli_env)
    shown = akg(["show", sid[:6]], cli_env, tmp_path)
    assert "review_result: accepted" in shown.stdout


def test_kill_during_generation_then_resume(tmp_path, cli_env):
    args = ["run", REQUEST, "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(akg_op_command() + args, env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "w").glob("op_relu_*/output/kernelgen_1/iter_01_*")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its harness workers, everything
    proc.wait()
    assert not (tmp_path / "o" / "relu_generated.py").exists()
    sid = re.search(r"session ([0-9a-f]{12})", proc.stdout.read()).group(1)
    resumed = akg(["resume", sid], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run_dir = next((tmp_path / "w").glob("op_relu_*/output/kernelgen_1"))
    assert sorted(p.name for p in run_dir.glob("iter_*")) == [
        "iter_01_candidate.py", "iter_01_proposal.json", "iter_01_verdict.json"]
    independent_relu_check(tmp_path / "o" / "relu_generated.py", cli_env)


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], result.stderr


def test_bad_input_gives_one_line_errors(tmp_path, cli_env):
    assert_one_line_error(akg(["run", "frobnicate (8, 8)"], cli_env, tmp_path), "no known operator")
    assert_one_line_error(akg(["run", "relu (8,,8)"], cli_env, tmp_path), "malformed shape")
    assert_one_line_error(akg(["resume", "feedbeef0000"], cli_env, tmp_path), "no session")
    assert_one_line_error(akg(["run", "--task", str(tmp_path / "missing.py")], cli_env, tmp_path), "does not exist")
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nclass Model(:\n")
    assert_one_line_error(akg(["run", "--task", str(broken)], cli_env, tmp_path), "syntax error at line 2")
    no_model = tmp_path / "nomodel.py"
    no_model.write_text("def get_inputs():\n    return []\n")
    assert_one_line_error(akg(["run", "--task", str(no_model)], cli_env, tmp_path), "does not define Model")
    unreadable = tmp_path / "secret.py"
    unreadable.write_text("x = 1\n")
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads anything
        assert_one_line_error(akg(["run", "--task", str(unreadable)], cli_env, tmp_path), "cannot read")
    assert_one_line_error(akg(["run", "relu (8, 8)", "--arch", "tpu9"], cli_env, tmp_path), "unsupported combination")


def test_invalid_answer_is_reasked_and_session_stays_resumable(tmp_path, cli_env):
    first = akg(["run", REQUEST, "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    sid = session_id_of(first)
    bad = akg(["resume", sid, "--answer", "maybe"], cli_env, tmp_path)
    assert bad.returncode == 2 and "is not an answer" in bad.stderr and "Use these parameters?" in bad.stdout
    assert "Traceback" not in bad.stderr
    good = akg(["resume", sid, "--answer", "no"], cli_env, tmp_path)
    assert good.returncode == 0 and "cancelled" in good.stdout
