"""The round loop both workflows share: plan children, propose them, evaluate them, settle them.

A round is:  stop? → plan parents (ucb / islands) → propose children (in parallel) → save
             → evaluate the pending ones (≤ max_concurrent per evaluator call, save after each call)
             → settle (give-back / island membership and migration) → best, patience → save.

The state is saved right after the proposals, so a run killed while evaluating resumes with the
same children rather than asking the generator again; every random choice comes from (seed, round),
so resumed and uninterrupted runs make the same choices. `run_round` returns a new state and leaves
its argument untouched; after an exception, reload the state file (it holds the latest progress).
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from generators.base import CandidateInfo, Proposal
from search import islands, ucb
from search.artefacts import write_run_artefacts
from search.progress import write_progress
from search.options import SearchOptions, parse_options
from search.quality import (
    ScoreFn,
    candidate_ms,
    pick_inspirations,
    reference_timings,
    speedup,
)
from search.state import STATE_FILE, Candidate, ChildPlan, ProgressPoint, SearchState

Propose = Callable[[CandidateInfo, list[CandidateInfo], int], Proposal]
Evaluate = Callable[[list[str]], list[dict]]
Clock = Callable[[], float]

STRATEGIES = {"adaptive_search": ucb, "evolve": islands}


# -- starting ------------------------------------------------------------------------------------
def start_search(
    workflow: str,
    seed_code: str,
    run_dir: str | Path | None = None,
    options: SearchOptions | None = None,
    *,
    seed_meta: dict | None = None,
    seed_verdict: dict | None = None,
    score_fn: ScoreFn = candidate_ms,
) -> SearchState:
    """A fresh run whose first candidate is the seed (the kernelgen result or the embedded kernel).

    Pass `seed_verdict` when the seed was already verified (and timed) to spare its evaluation; the
    first reference timings seen become the run's reference for every speedup.
    """
    opts = options or parse_options(workflow)
    if opts.workflow != workflow:
        raise ValueError(f"options are for {opts.workflow}, not {workflow}")
    state = SearchState(
        workflow=workflow,
        options=opts.model_dump(mode="json", exclude={"workflow"}),
        run_dir=str(run_dir) if run_dir is not None else None,
    )
    seed = Candidate(id=state.next_id(), code=seed_code, meta=dict(seed_meta or {}), round=0)
    seed.meta.setdefault("origin", "seed")
    state.candidates.append(seed)
    if seed_verdict is not None:
        _record(state, seed, seed_verdict, score_fn)
        _settle_seed(state)
    if run_dir is not None:
        state.save()
    return state


def load_search(run_dir: str | Path) -> SearchState:
    return SearchState.load(run_dir)


def open_search(
    workflow: str,
    seed_code: str,
    run_dir: str | Path,
    options: SearchOptions | None = None,
    **seed_kwargs,
) -> SearchState:
    """Resume the run in `run_dir` when it has a state file, else start it there.

    What a graph node calls on every (re-)entry: after a crash it picks up where the file left off.
    """
    state_file = Path(run_dir) / STATE_FILE
    if state_file.exists():
        state = SearchState.load(state_file)
        if state.workflow != workflow:
            raise ValueError(f"{run_dir} holds a run of {state.workflow}, not {workflow}")
        return state
    return start_search(workflow, seed_code, run_dir, options, **seed_kwargs)


# -- the loop ------------------------------------------------------------------------------------
def run_round(
    state: SearchState,
    propose: Propose,
    evaluate: Evaluate,
    *,
    score_fn: ScoreFn = candidate_ms,
    clock: Clock = time.monotonic,
    artefacts: bool = True,
) -> SearchState:
    """One round (round 0: the seed's evaluation). Returns the new state; saves it if it has a run dir."""
    state = state.model_copy(deep=True)
    if state.status != "running":
        return state
    started = clock()

    def checkpoint() -> None:
        # Count time as we go, so a kill mid-round loses at most one evaluator call's worth.
        nonlocal started
        now = clock()
        state.elapsed_s += now - started
        started = now
        if state.run_dir is not None:
            state.save()
            if artefacts:
                write_progress(state)  # watchers see each finished batch, not only rounds

    seed = state.candidates[0]
    if seed.status == "pending":
        _evaluate_pending(state, evaluate, score_fn, checkpoint)
        _settle_seed(state)
    else:
        # A round interrupted after its proposals is always completed: its children count already.
        reason = None if state.pending else stop_reason(state)
        if reason:
            _finish(state, reason)
        else:
            current = state.round + 1
            if not state.pending:
                _propose_children(state, current, propose)
                checkpoint()
            children = [c for c in state.candidates if c.round == current]
            _evaluate_pending(state, evaluate, score_fn, checkpoint)
            state.round = current
            STRATEGIES[state.workflow].finish_round(state, children, round_rng(state, current, "settle"))
            _update_best(state, children)
            reason = stop_reason(state)
            if reason:
                _finish(state, reason)
    checkpoint()
    if artefacts and state.run_dir is not None:
        write_run_artefacts(state)
    return state


def run(
    state: SearchState,
    propose: Propose,
    evaluate: Evaluate,
    *,
    until: Callable[[SearchState], bool] | None = None,
    on_round: Callable[[SearchState], None] | None = None,
    score_fn: ScoreFn = candidate_ms,
    clock: Clock = time.monotonic,
    artefacts: bool = True,
) -> SearchState:
    """Rounds until the search stops itself or `until(state)` says so (checked after each round)."""
    while state.status == "running":
        state = run_round(
            state, propose, evaluate, score_fn=score_fn, clock=clock, artefacts=artefacts
        )
        if on_round is not None:
            on_round(state)
        if until is not None and until(state):
            break
    return state


# -- stopping ------------------------------------------------------------------------------------
def stop_reason(state: SearchState) -> str | None:
    """Why no further round should start, or None."""
    opts = state.opts
    if not state.arms:
        return "seed_failed"
    if opts.require_timings and not any(c.time_ms is not None for c in state.arms):
        return "no_timings"  # without timings every candidate ties: a search would only burn time
    if len(state.candidates) >= opts.max_candidates:
        return "max_candidates"
    if state.elapsed_s >= opts.time_budget_s:
        return "time_budget"
    if state.rounds_since_improvement >= opts.patience:
        return "patience"
    if opts.max_rounds is not None and state.round >= opts.max_rounds:
        return "max_rounds"
    return None


def _finish(state: SearchState, reason: str) -> None:
    state.stop_reason = reason
    state.status = "failed" if reason == "seed_failed" else "finished"


# -- randomness ----------------------------------------------------------------------------------
def round_rng(state: SearchState, round_no: int, purpose: str) -> random.Random:
    """A fresh rng for one purpose of one round: nothing random has to be saved to resume exactly."""
    return random.Random(f"{state.opts.seed}:{state.workflow}:{round_no}:{purpose}")


def child_seed(state: SearchState, round_no: int, slot: int, attempt: int) -> int:
    return round_rng(state, round_no, f"child:{slot}:{attempt}").randrange(2**31)


# -- proposing -----------------------------------------------------------------------------------
def candidate_info(cand: Candidate) -> CandidateInfo:
    """How optimize() sees a candidate: code, verdict, and the figures the search knows."""
    meta = {
        **cand.meta,
        "time_ms": cand.time_ms,
        "speedup_vs_eager": cand.speedup_vs_eager,
        "speedup_vs_compile": cand.speedup_vs_compile,
    }
    if cand.island is not None:
        meta["island"] = cand.island
    return CandidateInfo(id=cand.id, code=cand.code or "", verdict=cand.verdict or {}, meta=meta)


def _safe_propose(propose: Propose, parent: CandidateInfo, insp: list[CandidateInfo], seed: int) -> Proposal:
    try:
        proposal = propose(parent, insp, seed)
    except Exception as error:  # a generator bug must cost one child, not the run
        return Proposal(error=f"{type(error).__name__}: {error}")
    return proposal if proposal is not None else Proposal(error="generator returned nothing")


def _ask(propose, parent, insp, seeds, known) -> tuple[Proposal, int, str | None]:
    """Propose with successive seeds until the code is new; returns (proposal, seed, duplicate_of)."""
    proposal, seed = Proposal(error="no attempt"), seeds[0]
    for seed in seeds:
        proposal = _safe_propose(propose, parent, insp, seed)
        if not proposal.ok or proposal.code not in known:
            return proposal, seed, None
    return proposal, seed, known[proposal.code]


def _propose_children(state: SearchState, current: int, propose: Propose) -> None:
    opts = state.opts
    budget = opts.max_candidates - len(state.candidates)
    count = min(_children_per_round(state), budget)
    rng = round_rng(state, current, "plan")
    plans: list[ChildPlan] = STRATEGIES[state.workflow].plan_round(state, count, rng)
    arms = state.arms
    asks = []
    for slot, plan in enumerate(plans):
        parent = candidate_info(state.get(plan.parent_id))
        insp = [candidate_info(c) for c in pick_inspirations(arms, plan.parent_id, opts.inspirations, rng)]
        seeds = [child_seed(state, current, slot, a) for a in range(2 * (opts.proposal_retries + 1))]
        asks.append((parent, insp, seeds))

    known = {c.code: c.id for c in state.candidates if c.code}
    first_tries = opts.proposal_retries + 1
    # Proposals can be slow (a model call each): ask for all children of the round at once.
    with ThreadPoolExecutor(max_workers=max(1, min(len(asks), opts.max_concurrent))) as threads:
        answers = list(
            threads.map(lambda a: _ask(propose, a[0], a[1], a[2][:first_tries], known), asks)
        )

    for slot, (plan, (parent, insp, seeds), answer) in enumerate(zip(plans, asks, answers)):
        proposal, seed, duplicate_of = answer
        if proposal.ok and duplicate_of is None and proposal.code in known:
            # Same code as a sibling proposed in parallel: ask again, now that we know it.
            proposal, seed, duplicate_of = _ask(propose, parent, insp, seeds[first_tries:], known)
        cand = Candidate(
            id=state.next_id(),
            parent_id=plan.parent_id,
            island=plan.island,
            round=current,
            seed=seed,
            code=proposal.code,
            meta={**proposal.meta, "inspirations": [i.id for i in insp]},
        )
        if proposal.usage:
            cand.meta["usage"] = [u.model_dump(mode="json") for u in proposal.usage]
        if not proposal.ok:
            cand.status, cand.error = "proposal_failed", proposal.error or "no code"
        elif duplicate_of is not None:
            cand.status, cand.duplicate_of = "duplicate", duplicate_of
            cand.error = f"same code as {duplicate_of}"
        else:
            known[proposal.code] = cand.id
        state.candidates.append(cand)


def _children_per_round(state: SearchState) -> int:
    opts = state.opts
    if state.workflow == "evolve":
        return len(state.islands) * opts.children_per_island
    return opts.max_concurrent


# -- evaluating ----------------------------------------------------------------------------------
def _evaluate_pending(state: SearchState, evaluate: Evaluate, score_fn: ScoreFn, checkpoint) -> None:
    limit = state.opts.max_concurrent
    pending = state.pending
    for start in range(0, len(pending), limit):
        batch = pending[start : start + limit]
        verdicts = evaluate([c.code for c in batch])
        if len(verdicts) != len(batch):
            raise RuntimeError(f"evaluator returned {len(verdicts)} verdicts for {len(batch)} codes")
        state.evaluations += len(batch)
        for cand, verdict in zip(batch, verdicts):
            _record(state, cand, verdict, score_fn)
        checkpoint()


def _record(state: SearchState, cand: Candidate, verdict: dict, score_fn: ScoreFn) -> None:
    verdict = dict(verdict or {})
    cand.verdict = verdict
    cand.status = "accepted" if verdict.get("accepted") else "failed"
    if not cand.accepted:
        cand.error = str(verdict.get("summary") or verdict.get("status") or "rejected")[:500]
        return
    cand.time_ms = score_fn(verdict)
    if state.reference is None:
        # The reference is timed by every evaluation; the first one seen is the run's reference,
        # so all speedups of a run share one baseline.
        state.reference = reference_timings(verdict)
        if state.reference is not None:
            for other in state.arms:
                _apply_speedups(state, other)
    _apply_speedups(state, cand)


def _apply_speedups(state: SearchState, cand: Candidate) -> None:
    cand.speedup_vs_eager = speedup(state.reference, "eager", cand.time_ms)
    cand.speedup_vs_compile = speedup(state.reference, "compile", cand.time_ms)


# -- settling ------------------------------------------------------------------------------------
def _settle_seed(state: SearchState) -> None:
    seed = state.candidates[0]
    if seed.accepted:
        state.best_id = seed.id
        state.selections.setdefault(seed.id, 0)
        if state.workflow == "evolve":
            islands.init_islands(state, seed.id)
    else:
        _finish(state, "seed_failed")
    _append_history(state)


def _update_best(state: SearchState, children: list[Candidate]) -> None:
    """Move the best to the fastest arm; patience counts rounds without a real gain.

    Without any measured time (CPU), nothing can be faster than the seed: the seed stays best and a
    round counts as progress when it adds an accepted candidate (more to explore from).
    """
    opts = state.opts
    best = state.best
    timed = [c for c in state.arms if c.time_ms is not None]
    improved = False
    if timed:
        fastest = min(timed, key=lambda c: c.time_ms)
        if best is None or best.time_ms is None:
            improved = True
        else:
            improved = fastest.time_ms < best.time_ms * (1.0 - opts.min_improvement)
        if best is None or best.time_ms is None or fastest.time_ms < best.time_ms:
            state.best_id = fastest.id
    else:
        improved = any(c.accepted for c in children)
    state.rounds_since_improvement = 0 if improved else state.rounds_since_improvement + 1
    _append_history(state)


def _append_history(state: SearchState) -> None:
    best = state.best
    state.history.append(
        ProgressPoint(
            candidates=len(state.candidates),
            evaluated=state.evaluated_count,
            best_id=best.id if best else None,
            best_time_ms=best.time_ms if best else None,
            best_speedup=best.speedup_vs_eager if best else None,
            elapsed_s=round(state.elapsed_s, 3),
        )
    )
