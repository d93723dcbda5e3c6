"""OpenAIGenerator with langchain-core's fake chat models: the protocol, end to end, no network."""
from __future__ import annotations

from typing import Any

import httpx
import openai
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from pydantic import Field

from generators.base import CandidateInfo, GenContext, Generator
from generators.llm_config import LLMSettings
from generators.openai_gen import OpenAIGenerator
from tests.fake_openai_server import RELU_CORRECT_KERNEL, code_reply

CTX = GenContext(op_name="relu", task_code="class Model: ...", arch="a100")
SETTINGS = LLMSettings(provider="openai", model="fake", backoff_base_s=0.0, max_retries=2)
TASK_REPLY = code_reply(
    "import torch\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x.exp()\n\n"
    "def get_inputs():\n    return [torch.randn(8, 8)]\n\ndef get_init_inputs():\n    return []\n"
)


class RecordingChatModel(GenericFakeChatModel):
    """Replies from a script and remembers the messages it was sent."""

    seen: list = Field(default_factory=list)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        self.seen.append([m.content for m in messages])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class FailingChatModel(GenericFakeChatModel):
    """Raises the given exceptions in turn, then replies from the script."""

    errors: list = Field(default_factory=list)
    calls: int = 0

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def generator_with(replies: list[str], **kwargs: Any) -> tuple[OpenAIGenerator, RecordingChatModel]:
    model = RecordingChatModel(messages=iter(replies))
    return OpenAIGenerator(SETTINGS, chat_model=model, sleep=lambda s: None, **kwargs), model


def test_implements_the_protocol():
    assert isinstance(OpenAIGenerator(SETTINGS), Generator)


def test_generate_returns_code_usage_and_progress():
    progress: list[int] = []
    generator, model = generator_with([code_reply(RELU_CORRECT_KERNEL)], on_progress=progress.append)
    proposal = generator.generate(CTX)
    assert proposal.ok, proposal.error
    assert "class ModelNew" in proposal.code and "```" not in proposal.code
    [usage] = proposal.usage
    assert usage.ok and usage.purpose == "generate" and usage.model == "fake"
    assert usage.completion_tokens == progress[-1] > 10  # streamed, and counted
    assert usage.prompt_tokens > 100  # estimated: the fake model reports no usage
    assert proposal.meta["usage_estimated"] is True
    assert progress == sorted(progress)
    system, user = model.seen[0]
    assert "108 SMs" in system and "class Model: ..." in user
    assert generator.usage_log == proposal.usage


def test_fix_sends_feedback_and_history():
    generator, model = generator_with([code_reply(RELU_CORRECT_KERNEL)])
    proposal = generator.fix(CTX, "class ModelNew: broken", "[MISMATCH] max_abs_err=0.37", ["attempt 1: MISMATCH"])
    assert proposal.ok
    _, user = model.seen[0]
    assert "[MISMATCH] max_abs_err=0.37" in user and "class ModelNew: broken" in user and "attempt 1: MISMATCH" in user
    assert proposal.usage[0].purpose == "fix"


def test_optimize_records_lineage():
    generator, model = generator_with([code_reply(RELU_CORRECT_KERNEL)])
    parent = CandidateInfo(id="p1", code="# parent", verdict={"speedup_vs_eager": 1.1})
    proposal = generator.optimize(CTX, parent, [CandidateInfo(id="c2", code="# other")], seed=7)
    assert proposal.ok
    assert proposal.meta | {"parent": "p1", "inspirations": ["c2"], "seed": 7} == proposal.meta
    assert "# other" in model.seen[0][1]


def test_build_task_extracts_a_task_file():
    generator, _ = generator_with([TASK_REPLY])
    proposal = generator.build_task("exp of an 8x8 tensor")
    assert proposal.ok, proposal.error
    assert "def get_init_inputs" in proposal.code


def test_reply_without_code_is_a_failed_attempt_not_a_crash():
    generator, _ = generator_with(["I am not able to help with Triton today."])
    proposal = generator.generate(CTX)
    assert not proposal.ok and proposal.code is None
    assert "no code defining class ModelNew" in proposal.error
    assert proposal.meta["reply"].startswith("I am not able")
    assert proposal.usage[0].ok  # the call itself worked


def test_fake_list_model_streams_per_character():
    progress: list[int] = []
    model = FakeListChatModel(responses=[TASK_REPLY])
    generator = OpenAIGenerator(SETTINGS, chat_model=model, on_progress=progress.append)
    assert generator.build_task("exp").ok
    assert progress[-1] == len(TASK_REPLY)  # the final count is always reported
    assert len(progress) < len(TASK_REPLY) / 10  # but not once per chunk: updates are throttled


def test_a_broken_progress_callback_does_not_fail_generation():
    def explode(tokens: int) -> None:
        raise RuntimeError("terminal went away")

    generator, _ = generator_with([code_reply(RELU_CORRECT_KERNEL)], on_progress=explode)
    assert generator.generate(CTX).ok


def test_unexpected_exception_becomes_an_error_without_retries():
    model = FailingChatModel(messages=iter([code_reply(RELU_CORRECT_KERNEL)]), errors=[RuntimeError("boom")])
    proposal = OpenAIGenerator(SETTINGS, chat_model=model, sleep=lambda s: None).generate(CTX)
    assert proposal.error == "model call failed: RuntimeError: boom"
    assert model.calls == 1 and len(proposal.usage) == 1 and not proposal.usage[0].ok


def test_transient_errors_are_retried_with_growing_backoff():
    request = httpx.Request("POST", "http://model/v1/chat/completions")
    errors = [
        openai.RateLimitError("slow down", response=httpx.Response(429, request=request), body=None),
        openai.APITimeoutError(request=request),
    ]
    model = FailingChatModel(messages=iter([code_reply(RELU_CORRECT_KERNEL)]), errors=errors)
    waits: list[float] = []
    settings = SETTINGS.model_copy(update={"backoff_base_s": 1.0, "backoff_max_s": 10.0})
    proposal = OpenAIGenerator(settings, chat_model=model, sleep=waits.append).generate(CTX)
    assert proposal.ok
    assert [u.ok for u in proposal.usage] == [False, False, True]
    assert "HTTP 429" in proposal.usage[0].error and "timed out" in proposal.usage[1].error
    assert 1.0 <= waits[0] <= 1.25 and 2.0 <= waits[1] <= 2.5


def test_refused_key_is_not_retried():
    request = httpx.Request("POST", "http://model/v1/chat/completions")
    refused = openai.AuthenticationError("bad key", response=httpx.Response(401, request=request), body=None)
    model = FailingChatModel(messages=iter([]), errors=[refused])
    proposal = OpenAIGenerator(SETTINGS, chat_model=model, sleep=lambda s: None).generate(CTX)
    assert "API key was refused" in proposal.error
    assert model.calls == 1


def test_prompt_errors_are_reported_not_raised():
    bad = CTX.model_copy(update={"dsl": "cuda_c"})
    generator, model = generator_with([])
    proposal = generator.generate(bad)
    assert "cannot build the generate prompt" in proposal.error and "cuda_c" in proposal.error
    assert proposal.meta["error_kind"] == "prompt"
    assert model.seen == []
