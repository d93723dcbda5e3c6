"""evolve: an island model. Separate populations evolve in parallel and trade their best.

Every island starts from the seed. Each round every island makes `children_per_island` children;
a child's parent is one of the island's own elites or, with probability `p_global`, one of the global
elites (the best over all islands). Accepted children join the island that made them. Every
`migration_interval` rounds the top `elite_size` of each island are copied to every other island.
Isolation keeps distinct lines of descent alive (diversity); migration spreads what works.
"""
from __future__ import annotations

import random

from search.quality import order_by_quality
from search.state import Candidate, ChildPlan, Migration, SearchState


def init_islands(state: SearchState, seed_id: str) -> None:
    state.islands = [[seed_id] for _ in range(state.opts.islands)]


def members(state: SearchState, island: int) -> list[Candidate]:
    return [state.get(cand_id) for cand_id in state.islands[island]]


def island_elites(state: SearchState, island: int, size: int, rng: random.Random) -> list[Candidate]:
    accepted = [c for c in members(state, island) if c.accepted]
    return order_by_quality(accepted, rng)[:size]


def global_elites(state: SearchState, size: int, rng: random.Random) -> list[Candidate]:
    return order_by_quality(state.arms, rng)[:size]


def choose_parent(state: SearchState, island: int, rng: random.Random) -> str:
    opts = state.opts
    # Draw the coin first, always, so the rng stream does not depend on which pool was empty.
    use_global = rng.random() < opts.p_global
    pool = [] if use_global else island_elites(state, island, opts.elite_size, rng)
    if not pool:
        pool = global_elites(state, opts.global_elite_size, rng)
    return rng.choice(pool).id


def plan_round(state: SearchState, count: int, rng: random.Random) -> list[ChildPlan]:
    """Up to `count` children, dealt round-robin over islands so a short budget still reaches all."""
    opts = state.opts
    plans = []
    for _ in range(opts.children_per_island):
        for island in range(len(state.islands)):
            if len(plans) < count:
                plans.append(ChildPlan(parent_id=choose_parent(state, island, rng), island=island))
    return plans


def migrate(state: SearchState, rng: random.Random) -> list[Migration]:
    """Copy the top `elite_size` of every island to every other island.

    Elites are taken from a snapshot before anyone moves, so the order islands are visited in
    does not matter.
    """
    size = state.opts.elite_size
    snapshot = [island_elites(state, i, size, rng) for i in range(len(state.islands))]
    moves = []
    for source, elites in enumerate(snapshot):
        for target in range(len(state.islands)):
            if target == source:
                continue
            new_ids = [c.id for c in elites if c.id not in state.islands[target]]
            if new_ids:
                state.islands[target].extend(new_ids)
                moves.append(Migration(round=state.round, source=source, target=target, ids=new_ids))
    state.migrations.extend(moves)
    return moves


def finish_round(state: SearchState, children: list[Candidate], rng: random.Random) -> None:
    """Settle accepted children on their islands; migrate when the interval comes round."""
    for child in children:
        if child.accepted and child.island is not None:
            state.islands[child.island].append(child.id)
    interval = state.opts.migration_interval
    if len(state.islands) > 1 and state.round % interval == 0:
        migrate(state, rng)
