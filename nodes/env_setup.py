"""Phase 0: detect the environment, propose framework/backend/arch/dsl, ask to confirm them."""
from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from session_state import EnvInfo, SessionState, log
from nodes import questions
from nodes.catalogue import find_arch
from nodes.context import generator_for
from nodes.errors import UserError
from nodes.env_probe import cached_detect, detection_age_s

FRESH_S = 120.0  # a detection younger than this belongs to the run that made it
from nodes.params import propose_params


def _check_endpoint(state: SessionState, config: RunnableConfig) -> None:
    """One short request to the configured model, so a wrong URL or key fails here, not later."""
    generator = generator_for(state, config)
    probe = getattr(generator, "probe", None)
    problem = probe() if probe else None
    if problem:
        raise UserError(f"the model endpoint is not usable: {problem}")


def env_setup(state: SessionState, config: RunnableConfig) -> dict:
    detected, from_cache = cached_detect()
    # The CLI's checks before the session detect (and cache) the machine seconds earlier: that is
    # this run's own detection, not a cached one from before.
    from_cache = from_cache and detection_age_s(detected) > FRESH_S
    settings = state.settings
    if settings.llm == "openai":
        _check_endpoint(state, config)
    env = EnvInfo(**detected, from_cache=from_cache, llm=settings.llm, model=settings.model)
    params = propose_params(env, find_arch(settings.request), settings.overrides)
    source = "cache hit" if from_cache else "detected"
    return {
        "env": env,
        "params": params,
        "phase": "env_setup",
        "pending": questions.confirm_params(env, params),
        "history": log(state, f"env_setup: {source} {env.device_name} ({env.triton_mode}); "
                              f"proposed {params.backend}/{params.arch}/{params.dsl}"),
    }
