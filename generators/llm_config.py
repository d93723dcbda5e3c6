"""Which generator a session uses and how it talks to the model: one settings object.

The API key is deliberately *not* a field. It is read from `OPENAI_API_KEY` at call time
(`read_api_key`), so the settings can be stored in the graph state, checkpoints and reports
without ever carrying a secret, and a resumed session picks up a rotated key.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from checkpoints.redaction import redact as shared_redact

Provider = Literal["embedded", "openai"]

ENV_PROVIDER = "AKG_OP_LLM"
ENV_MODEL = "AKG_OP_MODEL"
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"

# Used only when nothing names a model: cheap, and available on the default OpenAI endpoint.
# Local servers (vLLM, SGLang, Ollama) serve their own names, so users pass --model there.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# Local OpenAI-compatible servers usually accept any key, but the client library insists on one.
KEYLESS_PLACEHOLDER = "not-needed"


class LLMSettings(BaseModel):
    """How to reach the model. Holds no secret: safe to serialise, log and checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = "embedded"
    model: str | None = None
    base_url: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)  # per request; with streaming, per gap between chunks
    temperature: float = Field(default=0.2, ge=0)
    max_tokens: int = Field(default=8192, gt=0)
    max_retries: int = Field(default=3, ge=0)  # extra attempts after a 429, a 5xx or a timeout
    backoff_base_s: float = Field(default=1.0, ge=0)  # wait before retry n is base * 2**n
    backoff_max_s: float = Field(default=30.0, ge=0)  # also caps a server's Retry-After
    stream_usage: bool = True  # ask for token counts in the stream (stream_options.include_usage)

    @property
    def model_name(self) -> str:
        """The model actually requested (the default when none was named)."""
        return self.model or DEFAULT_OPENAI_MODEL

    @classmethod
    def resolve(
        cls,
        llm: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: object,
    ) -> LLMSettings:
        """Flags first, then the environment. `options` are the remaining fields (timeout_s,
        temperature, ...); a None value means "not given" so callers can pass flags through."""
        env = os.environ if env is None else env
        base_url = base_url or env.get(ENV_BASE_URL) or None
        provider = (llm or env.get(ENV_PROVIDER) or "").strip().lower()
        if not provider:
            # A configured endpoint is the user's signal that they want a model.
            provider = "openai" if (env.get(ENV_API_KEY) or base_url) else "embedded"
        if provider not in ("embedded", "openai"):
            raise ValueError(f"unknown LLM provider {provider!r}: use 'embedded' or 'openai'")
        given = {k: v for k, v in options.items() if v is not None}
        return cls(
            provider=provider,  # type: ignore[arg-type]
            model=model or env.get(ENV_MODEL) or None,
            base_url=base_url,
            **given,
        )

    def describe(self) -> str:
        """One line for Phase 0: which generator is in use (never the key)."""
        if self.provider == "embedded":
            return "embedded (no model: the built-in Triton lowering)"
        where = self.base_url or "the default OpenAI endpoint"
        return f"openai-compatible model {self.model_name} at {where}"


def read_api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The key, read when a request is made. Never store the result anywhere persistent."""
    env = os.environ if env is None else env
    return env.get(ENV_API_KEY) or None


# Keys as OpenAI and most proxies print them ("sk-...", "sk-proj-..."), and bearer headers.
_KEY_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+)")


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Remove the API key (and anything shaped like one) from text bound for logs or state.

    Servers echo keys in errors ("Incorrect API key provided: sk-abc...xyz"), so every error
    message from the endpoint passes through here before it is stored.
    """
    key = read_api_key(env)
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    return shared_redact(_KEY_SHAPES.sub("[redacted]", text), env)
