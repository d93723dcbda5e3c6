"""OpenAIGenerator against a real HTTP server (tests/fake_openai_server.py): every failure path."""
from __future__ import annotations

import socket
import time

import pytest

from generators.base import GenContext
from generators.feedback import summarize_verdict
from generators.llm_config import LLMSettings
from generators.openai_gen import OpenAIGenerator
from tests.fake_openai_server import (
    RELU_BUGGY_KERNEL,
    RELU_CORRECT_KERNEL,
    FakeOpenAIServer,
    Scripted,
    code_reply,
)

pytestmark = pytest.mark.timeout(60)

CTX = GenContext(op_name="relu", task_code="class Model: ...", arch="h100")
SECRET = "sk-live-DO-NOT-LEAK-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "AKG_OP_LLM", "AKG_OP_MODEL"):
        monkeypatch.delenv(name, raising=False)


def generator_for(server: FakeOpenAIServer, **overrides) -> OpenAIGenerator:
    options = {"timeout_s": 5.0, "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05} | overrides
    return OpenAIGenerator(LLMSettings.resolve(llm="openai", model="kernel-model", base_url=server.base_url, **options))


def test_buggy_then_correct_kernel_the_fix_request_carries_the_verifier_error():
    with FakeOpenAIServer([code_reply(RELU_BUGGY_KERNEL), code_reply(RELU_CORRECT_KERNEL)]) as server:
        generator = generator_for(server)
        first = generator.generate(CTX)
        assert first.ok and "0.1 * x" in first.code

        verdict = {"status": "mismatch", "summary": "outputs differ", "max_abs_err": 0.3787, "max_rel_err": 1.0}
        feedback = summarize_verdict(verdict)
        second = generator.fix(CTX, first.code, feedback, ["attempt 1: MISMATCH"])
        assert second.ok and "tl.where(x < 0, 0.0, x)" in second.code

    prompts = server.user_prompts()
    assert len(prompts) == 2
    assert "max_abs_err=0.3787" in prompts[1] and "0.1 * x" in prompts[1]
    assert "max_abs_err" not in prompts[0]
    body = server.requests[0]
    assert body["stream"] is True and body["model"] == "kernel-model"
    assert body["stream_options"] == {"include_usage": True}
    for proposal in (first, second):
        [usage] = proposal.usage
        assert usage.ok and usage.model == "kernel-model"
        assert usage.prompt_tokens > 100 and usage.completion_tokens > 10  # the server's counts
        assert "usage_estimated" not in proposal.meta


def test_rate_limit_then_success():
    script = [Scripted(status=429, headers={"Retry-After": "0"}), code_reply(RELU_CORRECT_KERNEL)]
    with FakeOpenAIServer(script) as server:
        proposal = generator_for(server).generate(CTX)
    assert proposal.ok
    assert [u.ok for u in proposal.usage] == [False, True]
    assert "rate limited" in proposal.usage[0].error and "HTTP 429" in proposal.usage[0].error
    assert len(server.requests) == 2


def test_server_error_forever_gives_up_after_bounded_retries():
    with FakeOpenAIServer([Scripted(status=500, error_message="model crashed")], repeat_last=True) as server:
        started = time.monotonic()
        proposal = generator_for(server, max_retries=3).generate(CTX)
        elapsed = time.monotonic() - started
    assert not proposal.ok
    assert "HTTP 500" in proposal.error and "gave up after 4 attempts" in proposal.error
    assert proposal.meta["error_kind"] == "endpoint"
    assert proposal.meta["give_up"] is True  # the workflow should stop, not iterate
    assert len(server.requests) == 4 and len(proposal.usage) == 4
    assert not any(u.ok for u in proposal.usage)
    assert elapsed < 5


def test_reply_with_no_code():
    with FakeOpenAIServer(["I'd rather explain relu in words: it zeroes negatives."]) as server:
        proposal = generator_for(server).generate(CTX)
    assert not proposal.ok
    assert "no code defining class ModelNew" in proposal.error
    assert proposal.meta["error_kind"] == "reply"  # a failed attempt: its error is the next feedback
    assert "give_up" not in proposal.meta
    assert proposal.usage[0].ok and proposal.usage[0].completion_tokens > 0
    assert len(server.requests) == 1  # a useless reply is a failed attempt, not a transport retry


def test_reply_cut_off_at_max_tokens_says_so():
    truncated = "```python\nimport torch\nclass Model"
    with FakeOpenAIServer([Scripted(content=truncated, finish_reason="length")]) as server:
        proposal = generator_for(server, max_tokens=64).generate(CTX)
    assert "cut off at max_tokens=64" in proposal.error


def test_hang_past_the_timeout_is_retried_then_reported():
    with FakeOpenAIServer([Scripted(content="never sent", delay_s=30)], repeat_last=True) as server:
        started = time.monotonic()
        proposal = generator_for(server, timeout_s=0.5, max_retries=1).generate(CTX)
        elapsed = time.monotonic() - started
    assert not proposal.ok
    assert "timed out" in proposal.error and "0.5s" in proposal.error
    assert len(server.requests) == 2
    assert all(u.latency_s >= 0.4 for u in proposal.usage)
    assert elapsed < 5


def test_server_without_usage_counts_gets_estimates():
    with FakeOpenAIServer([Scripted(content=code_reply(RELU_CORRECT_KERNEL), send_usage=False)]) as server:
        proposal = generator_for(server).generate(CTX)
    assert proposal.ok and proposal.meta["usage_estimated"] is True
    assert proposal.usage[0].completion_tokens > 10


def test_key_is_read_at_call_time_and_never_stored(monkeypatch):
    with FakeOpenAIServer(
        [code_reply(RELU_CORRECT_KERNEL), Scripted(status=401, error_message=f"Incorrect API key provided: {SECRET}")]
    ) as server:
        generator = generator_for(server)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # set after the generator was made
        ok = generator.generate(CTX)
        refused = generator.generate(CTX)
    assert server.authorizations[0] == f"Bearer {SECRET}"
    assert ok.ok
    assert "API key was refused" in refused.error and "HTTP 401" in refused.error
    assert len(server.requests) == 2  # a refused key is not retried
    for text in (ok.model_dump_json(), refused.model_dump_json(), generator.settings.model_dump_json(), refused.error):
        assert SECRET not in text


def test_without_key_or_base_url_the_default_endpoint_is_not_called():
    generator = OpenAIGenerator(LLMSettings(provider="openai", model="m"))
    assert generator.probe() == "OPENAI_API_KEY is not set (needed for the default OpenAI endpoint)"


def test_probe_ok_and_refused():
    with FakeOpenAIServer(["ok", Scripted(status=401, error_message="invalid key")]) as server:
        generator = generator_for(server)
        assert generator.probe() is None
        error = generator.probe()
    assert error.startswith("the API key was refused by http://127.0.0.1:") and "\n" not in error
    assert server.requests[0]["max_completion_tokens"] == 16
    assert [u.purpose for u in generator.usage_log] == ["probe", "probe"]


def test_probe_unreachable_endpoint():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = LLMSettings(provider="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", backoff_base_s=0.01)
    error = OpenAIGenerator(settings).probe()
    assert error.startswith(f"cannot reach the model at http://127.0.0.1:{port}/v1")
    assert "gave up after 2 attempts" in error


def test_model_not_found():
    with FakeOpenAIServer([Scripted(status=404, error_message="model 'kernel-model' does not exist")]) as server:
        proposal = generator_for(server).generate(CTX)
    assert "not found" in proposal.error and "--model" in proposal.error
    assert len(server.requests) == 1


def test_server_stops_by_itself():
    server = FakeOpenAIServer(["x"], lifetime_s=0.2).start()
    time.sleep(0.5)
    assert server._httpd is None
