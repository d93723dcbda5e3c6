"""Kernel generators: the `Generator` protocol and the factory that picks one per session."""
from __future__ import annotations

from collections.abc import Callable

from generators.base import CandidateInfo, GenContext, Generator, LLMUsage, Proposal
from generators.llm_config import LLMSettings

__all__ = ["CandidateInfo", "GenContext", "Generator", "LLMSettings", "LLMUsage", "Proposal", "make_generator"]


def make_generator(settings: LLMSettings, on_progress: Callable[[int], None] | None = None) -> Generator:
    """The session's generator. Imports are lazy: the embedded path must not need
    langchain-openai, and the openai path must not need the embedded compiler."""
    if settings.provider == "openai":
        from generators.openai_gen import OpenAIGenerator

        return OpenAIGenerator(settings, on_progress=on_progress)
    from generators.embedded import EmbeddedGenerator

    return EmbeddedGenerator()
