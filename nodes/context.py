"""What nodes need besides the state: the generator, the generation context, progress events."""
from __future__ import annotations

from pathlib import Path

from langchain_core.runnables import RunnableConfig

from generators.base import GenContext, Generator
from session_state import SessionState


def emit(event: dict) -> None:
    """Send a progress event to a streaming client (a no-op outside a streamed run)."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except Exception:  # not inside a streamed graph run (e.g. a unit test calling the node)
        pass


def generator_for(state: SessionState, config: RunnableConfig | None) -> Generator:
    """The session's generator. Tests may inject a factory through `configurable`."""
    factory = ((config or {}).get("configurable") or {}).get("generator_factory")
    if factory is not None:
        return factory(state.settings)
    from generators import make_generator
    from generators.llm_config import LLMSettings

    settings = state.settings
    llm = LLMSettings.resolve(llm=settings.llm, model=settings.model, base_url=settings.llm_base_url,
                              timeout_s=settings.llm_timeout_s, temperature=settings.temperature,
                              max_tokens=settings.max_tokens)
    return make_generator(llm, on_progress=lambda tokens: emit({"kind": "tokens", "tokens": tokens}))


def gen_context(state: SessionState) -> GenContext:
    params = state.params
    return GenContext(
        op_name=state.op_name or "op",
        task_code=Path(state.task_path).read_text(),
        framework=params.framework, backend=params.backend, arch=params.arch, dsl=params.dsl,
        device=state.env.verify_device if state.env else "cpu",
    )
