import random
from collections import Counter

from search import SearchState, parse_options, run, start_search
from search.fakes import FakeEvaluator, FakeProposer, seed_code
from search.islands import choose_parent, finish_round, global_elites, migrate, plan_round
from search.state import Candidate


def island_state(islands: list[list[tuple[str, float]]], **options) -> SearchState:
    """A state whose islands hold accepted candidates with the given (id, time_ms)."""
    opts = parse_options("evolve", islands=len(islands), **options)
    state = SearchState(workflow="evolve", options=opts.model_dump(mode="json", exclude={"workflow"}))
    for index, members in enumerate(islands):
        for cand_id, time_ms in members:
            state.candidates.append(
                Candidate(id=cand_id, code=cand_id, status="accepted", time_ms=time_ms, island=index)
            )
        state.islands.append([cand_id for cand_id, _ in members])
    return state


def test_migration_copies_each_islands_top_elites_to_every_other_island():
    state = island_state(
        [[("a1", 1.0), ("a2", 2.0), ("a3", 3.0)], [("b1", 1.5), ("b2", 0.5)], [("c1", 9.0)]],
        elite_size=2,
    )
    state.round = 3
    moves = migrate(state, random.Random(0))
    assert state.islands[0] == ["a1", "a2", "a3", "b2", "b1", "c1"]
    assert state.islands[1] == ["b1", "b2", "a1", "a2", "c1"]
    assert state.islands[2] == ["c1", "a1", "a2", "b2", "b1"]
    assert {(m.source, m.target) for m in moves} == {(s, t) for s in range(3) for t in range(3) if s != t}
    assert all(m.round == 3 for m in moves)
    # Migrating again moves nothing new: the elites are already everywhere.
    assert migrate(state, random.Random(0)) == []


def test_migration_happens_only_every_interval():
    state = island_state([[("a", 1.0)], [("b", 2.0)]], migration_interval=3)
    for round_no in (1, 2):
        state.round = round_no
        finish_round(state, [], random.Random(round_no))
        assert state.islands == [["a"], ["b"]]
    state.round = 3
    finish_round(state, [], random.Random(3))
    assert state.islands == [["a", "b"], ["b", "a"]]


def test_accepted_children_settle_on_the_island_that_made_them():
    state = island_state([[("a", 1.0)], [("b", 2.0)]], migration_interval=5)
    kids = [
        Candidate(id="k1", code="k1", status="accepted", time_ms=0.9, island=1, parent_id="a"),
        Candidate(id="k2", code="k2", status="failed", island=0, parent_id="a"),
    ]
    state.candidates += kids
    state.round = 1
    finish_round(state, kids, random.Random(0))
    assert state.islands == [["a"], ["b", "k1"]]


def test_parents_come_from_own_elites_or_the_global_pool():
    state = island_state(
        [[("a1", 5.0), ("a2", 6.0), ("a3", 7.0)], [("b1", 1.0), ("b2", 2.0)]], elite_size=2,
        global_elite_size=2, p_global=0.0,
    )
    local = Counter(choose_parent(state, 0, random.Random(seed)) for seed in range(40))
    assert set(local) == {"a1", "a2"}  # own top two only, never a3, never island 1

    state.options["p_global"] = 1.0
    global_picks = Counter(choose_parent(state, 0, random.Random(seed)) for seed in range(40))
    assert set(global_picks) == {"b1", "b2"}  # the two fastest overall

    state.options["p_global"] = 0.3
    mixed = [choose_parent(state, 0, random.Random(seed)) for seed in range(200)]
    share = sum(pick.startswith("b") for pick in mixed) / len(mixed)
    assert 0.15 < share < 0.45
    assert [c.id for c in global_elites(state, 2, random.Random(0))] == ["b1", "b2"]


def test_plan_reaches_every_island_before_any_gets_a_second_child():
    state = island_state([[("a", 1.0)], [("b", 1.0)], [("c", 1.0)]], children_per_island=2)
    assert [p.island for p in plan_round(state, 6, random.Random(0))] == [0, 1, 2, 0, 1, 2]
    assert [p.island for p in plan_round(state, 2, random.Random(0))] == [0, 1]


def test_evolve_runs_to_its_budget_in_parallel_rounds(tmp_path):
    opts = parse_options(
        "evolve", ["islands=3", "children_per_island=2", "max_concurrent=4", "max_candidates=40",
                   "migration_interval=2", "patience=50"]
    )
    evaluator = FakeEvaluator()
    state = run(start_search("evolve", seed_code(), tmp_path / "run", opts), FakeProposer(), evaluator)

    assert state.stop_reason == "max_candidates" and len(state.candidates) == 40
    assert all(len(batch) <= 4 for batch in evaluator.batches)
    assert max(evaluator.evaluated.values()) == 1
    per_round = Counter(c.round for c in state.candidates[1:])
    assert all(count == 6 for round_no, count in per_round.items() if round_no < state.round)
    per_island = Counter(c.island for c in state.candidates[1:])
    assert set(per_island) == {0, 1, 2}
    assert state.migrations and all(m.round % 2 == 0 for m in state.migrations)
    assert state.best.time_ms < state.candidates[0].time_ms
