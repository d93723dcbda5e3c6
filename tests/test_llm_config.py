"""LLMSettings: provider defaults from the environment, flags first, and no key anywhere."""
from __future__ import annotations

import pytest

from generators import make_generator
from generators.base import LLMUsage, Proposal
from generators.llm_config import DEFAULT_OPENAI_MODEL, LLMSettings, read_api_key, redact
from generators.usage import usage_totals

SECRET = "sk-test-SECRETVALUE-0123456789abcdef"


def test_default_is_embedded_without_key_or_url():
    assert LLMSettings.resolve(env={}).provider == "embedded"


@pytest.mark.parametrize(
    "env",
    [{"OPENAI_API_KEY": SECRET}, {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}],
)
def test_default_is_openai_when_key_or_url_set(env):
    settings = LLMSettings.resolve(env=env)
    assert settings.provider == "openai"
    assert settings.base_url == env.get("OPENAI_BASE_URL")


def test_flags_win_over_environment():
    env = {"AKG_OP_LLM": "openai", "AKG_OP_MODEL": "env-model", "OPENAI_BASE_URL": "http://env/v1"}
    settings = LLMSettings.resolve(llm="embedded", model="flag-model", base_url="http://flag/v1", env=env)
    assert (settings.provider, settings.model, settings.base_url) == ("embedded", "flag-model", "http://flag/v1")


def test_environment_names_provider_and_model():
    settings = LLMSettings.resolve(env={"AKG_OP_LLM": "OpenAI", "AKG_OP_MODEL": "qwen2.5-coder"})
    assert settings.provider == "openai"
    assert settings.model_name == "qwen2.5-coder"


def test_options_pass_through_and_none_means_default():
    settings = LLMSettings.resolve(env={}, timeout_s=5, temperature=None, max_tokens=100)
    assert settings.timeout_s == 5
    assert settings.temperature == LLMSettings().temperature
    assert settings.max_tokens == 100
    assert LLMSettings(provider="openai").model_name == DEFAULT_OPENAI_MODEL


def test_unknown_provider_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown LLM provider 'gemini'"):
        LLMSettings.resolve(llm="gemini", env={})


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError):
        LLMSettings(timeout_s=0)
    with pytest.raises(ValueError):
        LLMSettings(api_key=SECRET)  # there is no such field, on purpose


def test_key_never_serialised(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = LLMSettings.resolve(model="m")
    assert settings.provider == "openai"
    for text in (settings.model_dump_json(), repr(settings), str(settings.model_dump()), settings.describe()):
        assert SECRET not in text
    # The key is only ever read from the environment, when a call is made.
    assert read_api_key() == SECRET
    assert LLMSettings.model_validate_json(settings.model_dump_json()) == settings


def test_redact_removes_the_key_and_key_shaped_strings(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "local-key-1234")
    text = redact("Incorrect API key provided: local-key-1234; also sk-proj-abcdef123456 and Bearer xyz")
    assert "local-key-1234" not in text
    assert "sk-proj-abcdef123456" not in text
    assert "xyz" not in text
    assert text.count("[redacted]") == 3


def test_describe_says_which_generator_is_in_use():
    assert "embedded" in LLMSettings().describe()
    line = LLMSettings(provider="openai", model="m", base_url="http://h/v1").describe()
    assert "m" in line and "http://h/v1" in line


def test_make_generator_embedded_by_default():
    generator = make_generator(LLMSettings.resolve(env={}))
    assert generator.name == "embedded"


def test_make_generator_openai():
    generator = make_generator(LLMSettings(provider="openai", model="m"), on_progress=print)
    assert generator.name == "openai"
    assert generator.on_progress is print


def test_usage_totals():
    usages = [
        LLMUsage(model="m", purpose="generate", prompt_tokens=10, completion_tokens=5, latency_s=1.25),
        LLMUsage(model="m", purpose="fix", latency_s=0.5, ok=False, error="HTTP 500").model_dump(),
    ]
    totals = usage_totals(usages)
    assert totals == {
        "calls": 2,
        "failed_calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "latency_s": 1.75,
        "models": ["m"],
    }
    assert usage_totals(Proposal().usage)["calls"] == 0
