"""The `openai` generator: any OpenAI-compatible endpoint writes, fixes and improves kernels.

Contract with the graph: methods never raise. An unreachable model, a refused key, a reply
without code — each comes back as `Proposal(error=...)` with the usage of every attempt made,
so the session can record it, report it, and be resumed later. `Proposal.meta["error_kind"]`
tells the workflows what kind of failure it was:

- "endpoint": no reply at all (unreachable, timed out, refused key, 5xx or 429 after all retries).
  Further iterations would fail the same way, so `meta["give_up"]` is set too: the workflow
  ends the run (the session stays resumable).
- "reply": the model answered, but without usable code. A failed attempt; the error is feedback.
- "prompt": a template could not be rendered (a bug or an unknown DSL); also `give_up`.

Retries are done here, not by the OpenAI client (`max_retries=0` there), so that each attempt's
latency and failure is visible in the usage records and the backoff is bounded and testable.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from generators.base import CandidateInfo, GenContext, LLMUsage, Proposal
from generators.extract import Extracted, extract_model_new, extract_task
from generators.llm_config import KEYLESS_PLACEHOLDER, LLMSettings, read_api_key, redact
from generators.prompting import (
    PromptPair,
    build_task_prompts,
    fix_prompts,
    generate_prompts,
    optimize_prompts,
    probe_prompts,
)
from prompts.render import PromptError

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]  # tokens received so far in the current call

PROGRESS_INTERVAL_S = 0.1  # a token count on screen needs no more than ~10 updates a second
PROBE_MAX_TOKENS = 16
PROBE_TIMEOUT_S = 30.0
REPLY_KEPT_ON_FAILURE = 4000  # chars of an unusable reply kept in Proposal.meta for the logs


class MissingKeyError(RuntimeError):
    """No key and no custom endpoint: the default OpenAI API would refuse the call."""


@dataclass
class _Failure:
    message: str
    retryable: bool
    retry_after_s: float | None = None


@dataclass
class _Reply:
    text: str = ""
    error: str | None = None
    finish_reason: str | None = None
    served_model: str | None = None  # the name the server reports (may add a version suffix)
    usage_estimated: bool = False
    usage: list[LLMUsage] = field(default_factory=list)


class OpenAIGenerator:
    """Kernels from an OpenAI-compatible chat model, through `langchain_openai.ChatOpenAI`.

    `chat_model` replaces the real client (tests pass langchain-core's fake chat models);
    `sleep` replaces the backoff wait.
    """

    name = "openai"

    def __init__(
        self,
        settings: LLMSettings,
        on_progress: ProgressCallback | None = None,
        chat_model: BaseChatModel | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.on_progress = on_progress
        self._chat_model = chat_model
        self._sleep = sleep
        self.usage_log: list[LLMUsage] = []  # every call this generator made, probes included

    # -- the Generator protocol ------------------------------------------------------------

    def generate(self, ctx: GenContext) -> Proposal:
        return self._propose("generate", lambda: generate_prompts(ctx), extract_model_new)

    def fix(self, ctx: GenContext, code: str, feedback: str, history: list[str]) -> Proposal:
        return self._propose("fix", lambda: fix_prompts(ctx, code, feedback, history), extract_model_new)

    def optimize(
        self, ctx: GenContext, parent: CandidateInfo, inspirations: list[CandidateInfo], seed: int
    ) -> Proposal:
        proposal = self._propose(
            "optimize", lambda: optimize_prompts(ctx, parent, inspirations, seed), extract_model_new, seed=seed
        )
        proposal.meta.update(parent=parent.id, inspirations=[c.id for c in inspirations], seed=seed)
        return proposal

    def build_task(self, request: str, excerpt: str | None = None) -> Proposal:
        return self._propose("build_task", lambda: build_task_prompts(request, excerpt), extract_task)

    # -- Phase 0 ---------------------------------------------------------------------------

    def probe(self) -> str | None:
        """One short request. None when the endpoint answers; else a one-line reason."""
        system, user = probe_prompts()
        reply = self._complete(
            "probe",
            system,
            user,
            max_tokens=PROBE_MAX_TOKENS,
            timeout_s=min(self.settings.timeout_s, PROBE_TIMEOUT_S),
            retries=min(self.settings.max_retries, 1),
        )
        return reply.error

    # -- internals -------------------------------------------------------------------------

    def _propose(
        self,
        purpose: str,
        build_prompts: Callable[[], PromptPair],
        extract: Callable[[str], Extracted],
        seed: int | None = None,
    ) -> Proposal:
        meta: dict = {"purpose": purpose, "model": self.settings.model_name}
        try:
            system, user = build_prompts()
        except PromptError as exc:
            meta.update(error_kind="prompt", give_up=True)
            return Proposal(error=f"cannot build the {purpose} prompt: {exc}", meta=meta)

        reply = self._complete(purpose, system, user, seed=seed)
        meta.update(attempts=len(reply.usage), finish_reason=reply.finish_reason)
        if reply.served_model and reply.served_model != self.settings.model_name:
            meta["served_model"] = reply.served_model
        if reply.usage_estimated:
            meta["usage_estimated"] = True  # the server sent no token counts: these are guesses
        if reply.error:
            meta.update(error_kind="endpoint", give_up=True)
            return Proposal(error=reply.error, usage=reply.usage, meta=meta)

        extracted = extract(reply.text)
        if extracted.ok:
            return Proposal(code=extracted.code, usage=reply.usage, meta=meta)
        error = extracted.error or "the reply had no usable code"
        if reply.finish_reason == "length":
            error += f" (the reply was cut off at max_tokens={self.settings.max_tokens})"
        meta["error_kind"] = "reply"
        meta["reply"] = _clip(reply.text, REPLY_KEPT_ON_FAILURE)
        return Proposal(error=error, usage=reply.usage, meta=meta)

    def _complete(
        self,
        purpose: str,
        system: str,
        user: str,
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        seed: int | None = None,
    ) -> _Reply:
        # No secret of this process reaches the model, whatever a verdict or log carried.
        system, user = redact(system), redact(user)
        messages: list[BaseMessage] = ([SystemMessage(system)] if system else []) + [HumanMessage(user)]
        attempts = 1 + (self.settings.max_retries if retries is None else retries)
        reply = _Reply()
        for attempt in range(attempts):
            started = time.monotonic()
            received = [0]  # chunks so far, kept outside _stream so a failure still reports them
            try:
                model = self._model(max_tokens=max_tokens, timeout_s=timeout_s, seed=seed)
                text, usage = self._stream(model, messages, received)
            except Exception as exc:  # noqa: BLE001 - the graph must never see an exception
                failure = classify_failure(exc, self.settings, timeout_s)
                self._record(
                    reply,
                    LLMUsage(
                        model=self.settings.model_name,
                        purpose=purpose,
                        completion_tokens=received[0],
                        latency_s=round(time.monotonic() - started, 3),
                        ok=False,
                        error=failure.message,
                    ),
                )
                if failure.retryable and attempt + 1 < attempts:
                    delay = self._backoff(attempt, failure.retry_after_s)
                    log.info("%s: %s; retrying in %.2fs", purpose, failure.message, delay)
                    self._sleep(delay)
                    continue
                tried = f" (gave up after {attempt + 1} attempts)" if attempt else ""
                reply.error = failure.message + tried
                return reply

            latency = round(time.monotonic() - started, 3)
            prompt_tokens, completion_tokens = usage.get("input_tokens"), usage.get("output_tokens")
            if prompt_tokens is None or completion_tokens is None:
                reply.usage_estimated = True
                prompt_tokens = sum(len(str(m.content)) for m in messages) // 4
                completion_tokens = received[0]
            reply.text = redact(text)  # a model that echoes a secret does not get it written to disk
            reply.finish_reason = usage.get("finish_reason")
            reply.served_model = usage.get("model_name")
            self._record(
                reply,
                LLMUsage(
                    model=self.settings.model_name,
                    purpose=purpose,
                    prompt_tokens=int(prompt_tokens),
                    completion_tokens=int(completion_tokens),
                    latency_s=latency,
                ),
            )
            return reply
        return reply  # not reached: the loop returns on success and on the last failure

    def _stream(self, model: BaseChatModel, messages: list[BaseMessage], received: list[int]) -> tuple[str, dict]:
        """Stream the reply, reporting progress; returns the text and what the server said about
        usage and the finish reason."""
        full = None
        reported, last_report = 0, float("-inf")
        for chunk in model.stream(messages):
            full = chunk if full is None else full + chunk
            if chunk.content:
                received[0] += 1
                if time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
                    reported, last_report = received[0], time.monotonic()
                    self._progress(reported)
        if received[0] > reported:
            self._progress(received[0])  # the final count, always
        if full is None:
            return "", {}
        info: dict = {}
        if full.usage_metadata:
            info["input_tokens"] = full.usage_metadata.get("input_tokens")
            info["output_tokens"] = full.usage_metadata.get("output_tokens")
        metadata = full.response_metadata or {}
        info["finish_reason"] = metadata.get("finish_reason")
        info["model_name"] = metadata.get("model_name")
        return str(full.text), info

    def _model(self, *, max_tokens: int | None, timeout_s: float | None, seed: int | None) -> BaseChatModel:
        if self._chat_model is not None:
            return self._chat_model
        from langchain_openai import ChatOpenAI  # heavy import, only when a real call is made

        key = read_api_key()
        if key is None:
            if not self.settings.base_url:
                raise MissingKeyError("OPENAI_API_KEY is not set (needed for the default OpenAI endpoint)")
            key = KEYLESS_PLACEHOLDER
        return ChatOpenAI(
            model=self.settings.model_name,
            base_url=self.settings.base_url,
            api_key=key,
            timeout=timeout_s or self.settings.timeout_s,
            max_retries=0,  # retries are ours: see the module docstring
            temperature=self.settings.temperature,
            max_tokens=max_tokens or self.settings.max_tokens,
            streaming=True,
            stream_usage=self.settings.stream_usage,
            seed=seed,
        )

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        delay = self.settings.backoff_base_s * (2**attempt)
        delay *= 1 + 0.25 * random.random()  # jitter: parallel workers should not retry in lockstep
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return min(delay, self.settings.backoff_max_s)

    def _progress(self, tokens: int) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(tokens)
        except Exception:  # noqa: BLE001 - a broken progress display must not fail a generation
            log.debug("on_progress callback failed", exc_info=True)

    def _record(self, reply: _Reply, usage: LLMUsage) -> None:
        reply.usage.append(usage)
        self.usage_log.append(usage)


def classify_failure(exc: BaseException, settings: LLMSettings, timeout_s: float | None = None) -> _Failure:
    """What went wrong, in one line a user can act on, and whether trying again can help."""
    where = settings.base_url or "the OpenAI API"
    detail = _one_line(getattr(exc, "message", None) or str(exc))
    if isinstance(exc, MissingKeyError):
        return _Failure(str(exc), retryable=False)
    if isinstance(exc, openai.RateLimitError):
        return _Failure(f"rate limited by {where} (HTTP 429): {detail}", True, _retry_after(exc))
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return _Failure(
            f"the API key was refused by {where} (HTTP {exc.status_code}): {detail}; check OPENAI_API_KEY", False
        )
    if isinstance(exc, openai.NotFoundError):
        return _Failure(
            f"model {settings.model_name!r} or its endpoint was not found at {where} (HTTP 404): {detail}; "
            "check --model and OPENAI_BASE_URL",
            False,
        )
    if isinstance(exc, openai.APIStatusError):
        retryable = exc.status_code >= 500 or exc.status_code in (408, 409)
        return _Failure(f"{where} answered HTTP {exc.status_code}: {detail}", retryable, _retry_after(exc))
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException, TimeoutError)):
        limit = timeout_s or settings.timeout_s
        return _Failure(f"no answer from {where} within {limit:g}s (timed out)", True)
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError, ConnectionError)):
        cause = exc.__cause__ or exc.__context__
        reason = _one_line(str(cause)) if cause else detail
        return _Failure(f"cannot reach the model at {where}: {reason}", True)
    return _Failure(f"model call failed: {type(exc).__name__}: {detail}", False)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after"))
    except (TypeError, ValueError, AttributeError):
        return None


def _one_line(text: str, limit: int = 300) -> str:
    return _clip(redact(" ".join(str(text).split())), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
