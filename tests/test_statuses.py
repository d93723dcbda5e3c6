"""Scripts notice a wrong answer, and a session's listed status is what happened to it (issue 14,
point 4)."""
from __future__ import annotations

import signal
import subprocess

from checkpoints.registry import SessionRegistry
from tests.conftest import akg_op_command
from tests.test_cli import REQUEST, akg, session_id_of


def test_invalid_answer_in_a_script_exits_2_and_prints_the_question(tmp_path, cli_env):
    sid = session_id_of(akg(["run", REQUEST, "--workdir", str(tmp_path / "w")], cli_env, tmp_path))
    bad = akg(["resume", sid, "--answer", "maybe"], cli_env, tmp_path)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "Use these parameters?" in bad.stdout and "'maybe' is not an answer" in bad.stderr
    background = akg(["resume", sid, "--answer", "maybe", "--background"], cli_env, tmp_path)
    assert background.returncode == 2 and "Use these parameters?" in background.stdout
    assert SessionRegistry().get(sid)["status"] == "waiting"  # unchanged, still answerable


def test_failed_llm_probe_is_listed_as_failed(tmp_path, cli_env):
    env = {**cli_env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test"}
    result = akg(["run", REQUEST, "--llm", "openai", "--model", "m", "--llm-timeout", "5",
                  "--workdir", str(tmp_path / "w")], env, tmp_path)
    assert result.returncode == 2 and "endpoint is not usable" in result.stderr
    sid = session_id_of(result)
    row = SessionRegistry().get(sid)
    assert row["status"] == "failed" and "endpoint" in row["error"]
    listing = akg(["sessions"], cli_env, tmp_path).stdout
    line = next(line for line in listing.splitlines() if sid in line)
    assert "failed" in line and "running" not in line


def _as_from_a_terminal() -> None:
    """A shell starts the command with SIGINT at its default and unblocked; inside this test run an
    earlier test may have left the pytest process ignoring it, which a child would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def test_ctrl_c_leaves_the_session_interrupted_and_resumable(tmp_path, cli_env):
    proc = subprocess.Popen(akg_op_command() + ["run", REQUEST, "--yes", "--workdir", str(tmp_path / "w"),
                                                "--out", str(tmp_path / "o")],
                            env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)
    seen = ""
    for line in proc.stdout:  # build_task (a few seconds of task validation) runs next
        seen += line
        if "confirm_params" in line:
            break
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    out, err = proc.communicate(timeout=120)
    out = seen + out
    assert proc.returncode == 130, out + err
    sid = session_id_of(subprocess.CompletedProcess([], 0, out, err))
    assert SessionRegistry().get(sid)["status"] == "interrupted"
    assert "interrupted" in akg(["status", sid], cli_env, tmp_path).stdout
    resumed = akg(["resume", sid], cli_env, tmp_path)
    assert resumed.returncode == 0 and (tmp_path / "o" / "relu_generated.py").exists(), resumed.stdout + resumed.stderr
