"""How good a candidate is: its measured time, and its rank among the others.

On a GPU the harness measures the candidate's median time, and faster is better. On a CPU no time is
measured (the interpreter says nothing about speed), so every accepted candidate scores None and
ranks equal: the search then relies purely on exploration. A caller may pass its own `score_fn`
(lower is better) to rank by any other deterministic proxy.
"""
from __future__ import annotations

import random
from typing import Callable

from search.state import Candidate

ScoreFn = Callable[[dict], "float | None"]


def _median_ms(timings: dict | None, key: str) -> float | None:
    entry = (timings or {}).get(key) or {}
    value = entry.get("median_ms")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def candidate_ms(verdict: dict) -> float | None:
    """Default score: the candidate's median time in ms (None when not measured)."""
    return _median_ms(verdict.get("timings"), "candidate")


def reference_timings(verdict: dict) -> dict | None:
    """The eager / torch.compile timings a verdict carries, or None."""
    timings = verdict.get("timings") or {}
    reference = {key: timings[key] for key in ("eager", "compile") if timings.get(key)}
    return reference or None


def speedup(reference: dict | None, key: str, time_ms: float | None) -> float | None:
    base = _median_ms(reference, key)
    return base / time_ms if base and time_ms else None


def rank_quality(arms: list[Candidate]) -> dict[str, float]:
    """Quality in [0, 1] from rank: the fastest arm 1, the slowest 0, equal times equal quality.

    Ranks (not raw times) keep the exploration weight meaningful whatever the kernel's scale.
    Unmeasured arms rank below every measured one; when nothing is measured all rank equal (1.0).
    """
    if not arms:
        return {}
    keys = sorted({_sort_key(c) for c in arms})
    if len(keys) == 1:
        return {c.id: 1.0 for c in arms}
    # Rank by distinct value so ties share a quality; spread ranks over [0, 1].
    rank_of = {key: index for index, key in enumerate(keys)}
    top = len(keys) - 1
    return {c.id: 1.0 - rank_of[_sort_key(c)] / top for c in arms}


def _sort_key(cand: Candidate) -> tuple[int, float]:
    return (0, cand.time_ms) if cand.time_ms is not None else (1, 0.0)


def order_by_quality(cands: list[Candidate], rng: random.Random) -> list[Candidate]:
    """Best first; equal candidates in a seeded random order (so ties don't favour old ids)."""
    shuffled = list(cands)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=_sort_key)


def pick_inspirations(
    arms: list[Candidate], exclude: str, count: int, rng: random.Random
) -> list[Candidate]:
    """Up to `count` other accepted candidates, one from each quality tier (best to worst).

    Showing a fast, a middling and a slow kernel gives a model contrast to learn from, not just
    near-copies of the parent.
    """
    others = order_by_quality([c for c in arms if c.id != exclude], rng)
    if count <= 0 or not others:
        return []
    if len(others) <= count:
        return others
    tiers = [others[i * len(others) // count : (i + 1) * len(others) // count] for i in range(count)]
    return [rng.choice(tier) for tier in tiers if tier]
