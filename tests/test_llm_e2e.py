"""`akg-op run ... --llm openai --yes` against the fake OpenAI-compatible server, in a child process:
the model first sends a buggy kernel, then (given the verifier's error) a correct one."""
from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import akg_op_command
from tests.fake_openai_server import RELU_BUGGY_KERNEL, RELU_CORRECT_KERNEL, FakeOpenAIServer, code_reply

REQUEST = "Generate a relu kernel, input (64, 512), fp32"


def akg(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(akg_op_command() + args, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(300)
def test_run_with_a_model_fixes_its_buggy_kernel(tmp_path, cli_env, akg_home):
    script = [code_reply(RELU_BUGGY_KERNEL), code_reply(RELU_CORRECT_KERNEL)]
    with FakeOpenAIServer(script, answer_probes=True, lifetime_s=280) as server:
        env = {**cli_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-e2e-test-key-000000"}
        result = akg(["run", REQUEST, "--llm", "openai", "--model", "fake-kernel-model", "--yes",
                      "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")], env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # The second request is the fix, and it carried the verifier's verdict on the buggy kernel.
    prompts = server.user_prompts()
    assert len(prompts) == 2, prompts
    assert "0.1 * x" in prompts[1] and "MISMATCH" in prompts[1], prompts[1][-1500:]

    kernel = (tmp_path / "o" / "relu_generated.py").read_text()
    assert "tl.maximum(x, 0.0)" in kernel

    # Token counts reached the results store and the report; the key reached neither.
    session_dir = next((tmp_path / "w").glob("op_relu_*"))
    report = (session_dir / "report.md").read_text()
    assert "LLM: 2 call(s)" in report, report
    with sqlite3.connect(akg_home / "results.db") as db:
        rows = db.execute("select prompt_tokens, completion_tokens from llm_calls").fetchall()
    assert len(rows) == 2 and all(p > 0 and c > 0 for p, c in rows)
    for path in [*session_dir.rglob("*"), akg_home / "results.db", *akg_home.glob("*.sqlite")]:
        if path.is_file():
            assert b"sk-e2e-test-key" not in path.read_bytes(), path


def test_unreachable_endpoint_fails_phase_0_with_one_line(tmp_path, cli_env):
    env = {**cli_env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test-unreachable-0000"}
    result = akg(["run", REQUEST, "--llm", "openai", "--yes", "--workdir", str(tmp_path / "w"),
                  "--llm-timeout", "2"], env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model endpoint is not usable" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_model_down_mid_run_reports_and_resumes(tmp_path, cli_env):
    """500 forever during generation: a failure report, a one-line error, and a session that
    finishes on `resume` once the model is back."""
    from tests.fake_openai_server import Scripted

    down = [Scripted(status=500)] * 8
    args = ["run", REQUEST, "--llm", "openai", "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    with FakeOpenAIServer(down, repeat_last=True, answer_probes=True, lifetime_s=120) as server:
        env = {**cli_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-e2e-test-key-111111"}
        failed = akg(args, env, tmp_path)
    assert failed.returncode != 0 and "model could not be reached" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    session_dir = next((tmp_path / "w").glob("op_relu_*"))
    assert "could not be reached" in (session_dir / "report.md").read_text()
    sid = failed.stdout.split("session ", 1)[1].split()[0]
    with FakeOpenAIServer([code_reply(RELU_CORRECT_KERNEL)], answer_probes=True, lifetime_s=120) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        resumed = akg(["resume", sid], env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "tl.maximum(x, 0.0)" in (tmp_path / "o" / "relu_generated.py").read_text()
