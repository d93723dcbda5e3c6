"""Which generation workflows a session may choose, and what each is for."""
from __future__ import annotations

DESCRIPTIONS = {
    "kernelgen": "generate → verify → fix until accepted (1-5 min)",
    "adaptive_search": "UCB search over candidates from the best kernel so far (10-30 min)",
    "evolve": "island-model evolution over a population of candidates (15-60 min)",
}


def available_workflows() -> list[str]:
    return list(DESCRIPTIONS)
