"""adaptive_search: every accepted candidate is an arm of a bandit; parents are chosen by UCB.

    ucb(i) = quality(i) + c * sqrt(ln(N + 1) / (n_i + 1))

quality is rank-based (fastest arm 1, slowest 0), n_i is how often arm i was chosen as a parent and N
the sum of all n_i. A round picks `max_concurrent` parents one after another, counting each pick at
once so the next pick in the same round sees it (the batch spreads over arms instead of piling onto
one). When every child a parent got in a round fails, its picks from that round are given back:
a broken child says more about the proposal than about the parent's promise.
"""
from __future__ import annotations

import math
import random

from search.quality import rank_quality
from search.state import Candidate, ChildPlan, SearchState

TIE_TOLERANCE = 1e-9


def ucb_scores(arms: list[Candidate], selections: dict[str, int], c: float) -> dict[str, float]:
    quality = rank_quality(arms)
    total = sum(selections.get(arm.id, 0) for arm in arms)
    log_term = math.log(total + 1)
    return {
        arm.id: quality[arm.id] + c * math.sqrt(log_term / (selections.get(arm.id, 0) + 1))
        for arm in arms
    }


def select_parent(
    arms: list[Candidate], selections: dict[str, int], c: float, rng: random.Random
) -> str:
    """The arm with the highest UCB score; equal scores broken by the seeded rng."""
    if not arms:
        raise ValueError("no accepted candidate to choose a parent from")
    scores = ucb_scores(arms, selections, c)
    best = max(scores.values())
    tied = sorted(arm_id for arm_id, score in scores.items() if best - score <= TIE_TOLERANCE)
    return tied[0] if len(tied) == 1 else rng.choice(tied)


def select_parents(
    arms: list[Candidate], selections: dict[str, int], c: float, count: int, rng: random.Random
) -> list[str]:
    """`count` parents for one round; `selections` is updated with every pick."""
    parents = []
    for _ in range(count):
        parent = select_parent(arms, selections, c, rng)
        selections[parent] = selections.get(parent, 0) + 1
        parents.append(parent)
    return parents


def give_back(
    selections: dict[str, int], round_parents: list[str], children: list[Candidate]
) -> list[str]:
    """Undo this round's picks of every parent none of whose children was accepted.

    Returns the parents that gave their picks back.
    """
    accepted_parents = {child.parent_id for child in children if child.accepted}
    returned = []
    for parent in dict.fromkeys(round_parents):  # unique, in order
        if parent in accepted_parents:
            continue
        picks = round_parents.count(parent)
        selections[parent] = max(0, selections.get(parent, 0) - picks)
        returned.append(parent)
    return returned


def plan_round(state: SearchState, count: int, rng: random.Random) -> list[ChildPlan]:
    opts = state.opts
    parents = select_parents(state.arms, state.selections, opts.ucb_c, count, rng)
    state.round_parents = parents
    return [ChildPlan(parent_id=parent) for parent in parents]


def finish_round(state: SearchState, children: list[Candidate], rng: random.Random) -> None:
    give_back(state.selections, state.round_parents, children)
    state.round_parents = []
