"""Which generation workflows a session may choose, and what each is for."""
from __future__ import annotations

DESCRIPTIONS = {
    "kernelgen": "generate → verify → fix until accepted (1-5 min)",
    "adaptive_search": "UCB search over candidates from the best kernel so far (10-30 min)",
    "evolve": "island-model evolution over a population of candidates (15-60 min)",
}


def available_workflows() -> list[str]:
    return list(DESCRIPTIONS)


def describe(workflow: str, env=None, search_options: dict | None = None) -> str:
    """What choosing `workflow` will do on this machine."""
    text = DESCRIPTIONS.get(workflow, "")
    untimed = env is not None and env.device_kind == "cpu"
    forced = str((search_options or {}).get("require_timings", "true")).lower() in ("false", "0", "no")
    if workflow in ("adaptive_search", "evolve") and untimed and not forced:
        text += ("; no GPU here, so nothing is timed and candidates cannot be ranked: it verifies the "
                 "seed kernel and stops (--option require_timings=false searches anyway)")
    return text
