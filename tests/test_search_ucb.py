import math
import random
from collections import Counter

import pytest

from search import SearchState, parse_options, run, start_search
from search.fakes import OPTIMUM, FakeEvaluator, FakeProposer, kernel_code, seed_code
from search.quality import pick_inspirations, rank_quality
from search.state import Candidate
from search.ucb import give_back, select_parent, select_parents, ucb_scores


def arm(cand_id, time_ms=None, status="accepted", parent=None):
    return Candidate(id=cand_id, code=cand_id, status=status, time_ms=time_ms, parent_id=parent)


# -- quality and the UCB formula ----------------------------------------------------------------
def test_rank_quality_is_by_rank_not_by_time():
    arms = [arm("a", 3.0), arm("b", 1.0), arm("c", 2.0), arm("d", 100.0)]
    assert rank_quality(arms) == {"b": 1.0, "c": pytest.approx(2 / 3), "a": pytest.approx(1 / 3), "d": 0.0}


def test_rank_quality_ties_and_unmeasured():
    assert rank_quality([arm("a", 2.0), arm("b", 2.0), arm("c", 1.0)]) == {"a": 0.0, "b": 0.0, "c": 1.0}
    # On CPU nothing is timed: all equal, exploration decides.
    assert rank_quality([arm("a"), arm("b")]) == {"a": 1.0, "b": 1.0}
    # An unmeasured arm ranks below every measured one.
    assert rank_quality([arm("a"), arm("b", 5.0)]) == {"a": 0.0, "b": 1.0}


def test_ucb_scores_follow_the_formula():
    arms = [arm("fast", 1.0), arm("slow", 2.0)]
    selections = {"fast": 3, "slow": 0}
    scores = ucb_scores(arms, selections, c=1.414)
    total = 3
    assert scores["fast"] == pytest.approx(1.0 + 1.414 * math.sqrt(math.log(total + 1) / 4))
    assert scores["slow"] == pytest.approx(0.0 + 1.414 * math.sqrt(math.log(total + 1) / 1))


def test_exploration_weight_decides_between_exploit_and_explore():
    arms = [arm("fast", 1.0), arm("slow", 2.0)]
    rng = random.Random(0)
    assert select_parent(arms, {"fast": 10, "slow": 0}, c=0.0, rng=rng) == "fast"
    assert select_parent(arms, {"fast": 10, "slow": 0}, c=1.414, rng=rng) == "slow"


def test_ties_are_broken_by_the_seeded_rng():
    arms = [arm("a"), arm("b"), arm("c")]
    picks = [select_parent(arms, {}, 1.414, random.Random(seed)) for seed in range(30)]
    assert set(picks) == {"a", "b", "c"}  # every tied arm can win
    again = [select_parent(arms, {}, 1.414, random.Random(seed)) for seed in range(30)]
    assert picks == again  # and the same seed always picks the same


def test_a_round_spreads_picks_over_equal_arms():
    selections: dict[str, int] = {}
    picks = select_parents([arm("a"), arm("b"), arm("c")], selections, 1.414, 6, random.Random(1))
    assert Counter(picks) == {"a": 2, "b": 2, "c": 2}
    assert selections == {"a": 2, "b": 2, "c": 2}


def test_parent_whose_children_all_fail_gives_back_its_picks():
    selections = {"p": 5, "q": 4}
    children = [
        arm("c1", status="failed", parent="p"),
        arm("c2", status="duplicate", parent="p"),
        arm("c3", status="failed", parent="q"),
        arm("c4", 1.0, parent="q"),
    ]
    returned = give_back(selections, ["p", "p", "q", "q"], children)
    assert returned == ["p"]
    assert selections == {"p": 3, "q": 4}


def test_inspirations_come_from_different_quality_tiers():
    arms = [arm(f"c{i}", float(i)) for i in range(9)]
    picks = pick_inspirations(arms, exclude="c0", count=2, rng=random.Random(3))
    times = sorted(p.time_ms for p in picks)
    assert len(picks) == 2 and "c0" not in {p.id for p in picks}
    assert times[0] <= 4.0 < times[1]  # one from the faster half, one from the slower


# -- the whole loop on the fake -----------------------------------------------------------------
def test_adaptive_search_runs_to_its_budget_and_improves(tmp_path):
    opts = parse_options("adaptive_search", ["max_candidates=24", "max_concurrent=3", "patience=50"])
    evaluator = FakeEvaluator()
    state = start_search("adaptive_search", seed_code(), tmp_path / "run", opts)
    state = run(state, FakeProposer(), evaluator)

    assert state.status == "finished" and state.stop_reason == "max_candidates"
    assert len(state.candidates) == 24
    assert all(len(batch) <= 3 for batch in evaluator.batches)
    assert max(evaluator.evaluated.values()) == 1  # no code evaluated twice
    seed, best = state.candidates[0], state.best
    assert best.time_ms < seed.time_ms and best.speedup_vs_eager > seed.speedup_vs_eager
    # Every child's parent was an accepted candidate; failed children are kept but never parents.
    accepted = {c.id for c in state.arms}
    assert all(c.parent_id in accepted for c in state.candidates[1:])
    assert set(state.selections) <= accepted


def test_reference_is_the_first_timing_seen(tmp_path):
    class DriftingReference(FakeEvaluator):
        def verdict(self, code):
            verdict = super().verdict(code)
            if verdict["timings"]:
                verdict["timings"]["eager"] = {"median_ms": 2.0 + len(self.batches)}
            return verdict

    opts = parse_options("adaptive_search", ["max_candidates=8", "max_concurrent=2"])
    state = run(start_search("adaptive_search", seed_code(), None, opts), FakeProposer(), DriftingReference())
    assert state.reference["eager"]["median_ms"] == 3.0  # from the seed's evaluation (call 1)
    for cand in state.arms:
        assert cand.speedup_vs_eager == pytest.approx(3.0 / cand.time_ms)


def test_patience_stops_a_search_that_cannot_improve(tmp_path):
    opts = parse_options("adaptive_search", ["patience=3", "max_candidates=100", "max_concurrent=2"])
    state = start_search("adaptive_search", kernel_code(OPTIMUM), tmp_path / "run", opts)
    state = run(state, FakeProposer(), FakeEvaluator())
    assert state.stop_reason == "patience"
    assert state.round == 3 and state.best_id == "cand_000"


def test_time_budget_stops_between_rounds(tmp_path):
    ticks = iter(range(0, 10_000, 50))  # every clock read advances 50 s
    opts = parse_options("adaptive_search", ["time_budget_s=400", "max_candidates=1000", "patience=99"])
    state = start_search("adaptive_search", seed_code(), tmp_path / "run", opts)
    state = run(state, FakeProposer(), FakeEvaluator(), clock=lambda: float(next(ticks)))
    assert state.stop_reason == "time_budget"
    assert 400 <= state.elapsed_s < 400 + 4 * 50  # at most one round past the budget


def test_without_timings_the_seed_stays_best_and_search_still_explores(tmp_path):
    opts = parse_options("adaptive_search", ["max_candidates=10", "max_concurrent=3", "require_timings=false"])
    state = run(start_search("adaptive_search", seed_code(), tmp_path / "run", opts),
                FakeProposer(), FakeEvaluator(timed=False))
    assert state.stop_reason == "max_candidates" and len(state.arms) > 3
    assert state.best_id == "cand_000" and state.reference is None
    # Equal quality: exploration spreads parents instead of always extending the seed.
    assert len({c.parent_id for c in state.candidates[1:]}) > 1


def test_a_failing_seed_fails_the_run(tmp_path):
    bad_seed = kernel_code({"BLOCK": 2048, "WARPS": 16, "STAGES": 1})
    state = run(start_search("adaptive_search", bad_seed, tmp_path / "run"), FakeProposer(), FakeEvaluator())
    assert state.status == "failed" and state.stop_reason == "seed_failed"
    assert len(state.candidates) == 1


def test_a_known_seed_verdict_is_not_evaluated_again(tmp_path):
    evaluator = FakeEvaluator()
    opts = parse_options("adaptive_search", ["max_candidates=5", "max_concurrent=4"])
    state = start_search("adaptive_search", seed_code(), tmp_path / "run", opts,
                         seed_verdict=FakeEvaluator().verdict(seed_code()))
    state = run(state, FakeProposer(), evaluator)
    assert seed_code() not in evaluator.evaluated
    assert state.candidates[0].speedup_vs_eager is not None


def test_proposal_failures_and_repeats_are_kept_but_not_evaluated(tmp_path):
    evaluator = FakeEvaluator()
    opts = parse_options("adaptive_search", ["max_candidates=30", "max_concurrent=4", "patience=99"])
    state = run(start_search("adaptive_search", seed_code(), tmp_path / "run", opts),
                FakeProposer(fail_every=3), evaluator)
    failed = [c for c in state.candidates if c.status == "proposal_failed"]
    assert failed and all(c.code is None and c.error for c in failed)
    assert sum(evaluator.evaluated.values()) == state.evaluated_count
    reloaded = SearchState.load(tmp_path / "run")
    assert [c.status for c in reloaded.candidates] == [c.status for c in state.candidates]
