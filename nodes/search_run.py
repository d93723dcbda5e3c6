"""The search workflows' steps (adaptive_search, evolve), wired as a cyclic subgraph in
graph/search.py: prepare (seed) → round → round … → finish.

The population lives in the run directory (`search_state.json`, saved after every evaluator
batch), so a killed worker resumes mid-round without re-evaluating finished candidates; the
results store also serves any verdict already computed for the same code.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from langchain_core.runnables import RunnableConfig

import harness
import search
from checkpoints.results import ResultsStore
from generators.base import Proposal
from generators.usage import usage_totals
from session_state import RunRecord, SessionState, log, now_iso
from nodes import journal, questions
from nodes.context import emit, gen_context, generator_for
from nodes.errors import UserError
from nodes.evaluate import evaluate_candidate


def best_previous(state: SessionState) -> tuple[str, dict, dict] | None:
    """The fastest (else latest) accepted kernel of earlier runs: (code, meta, verdict)."""
    done = [r for r in state.runs[:-1] if r.status == "success" and r.code_path]
    if not done:
        return None

    def speed(run: RunRecord) -> float:
        return (run.verdict or {}).get("speedup_vs_eager") or 0.0

    best = max(done, key=lambda r: (speed(r), r.finished or ""))
    # A kernelgen attempt's tunables (or a search's best candidate's) let the embedded generator
    # search near it instead of starting over.
    meta = journal.proposal_meta_of(best.code_path)
    if meta is None:
        best_cand = search.load_search(best.dir).best if (Path(best.dir) / "search_state.json").exists() else None
        meta = best_cand.meta if best_cand else {}
    return Path(best.code_path).read_text(), meta, best.verdict or {}


def _fresh_seed(state: SessionState, config: RunnableConfig, run: RunRecord) -> tuple[str, dict, dict]:
    """No earlier kernel: the generator's first proposal, verified like any candidate."""
    proposal: Proposal = generator_for(state, config).generate(gen_context(state))
    if not proposal.ok:
        raise UserError(f"{run.workflow} needs a first kernel and the generator gave none: {proposal.error}")
    path = Path(run.dir) / "seed_candidate.py"
    path.write_text(proposal.code)
    verdict = evaluate_candidate(state, str(path), f"{run.workflow}_{run.index}")
    return proposal.code, proposal.meta, verdict


def prepare(state: SessionState, config: RunnableConfig) -> dict:
    run = state.current_run.model_copy(deep=True)
    Path(run.dir).mkdir(parents=True, exist_ok=True)
    resumed = (Path(run.dir) / "search_state.json").exists()
    if not resumed:
        try:
            options = search.parse_options(run.workflow, [f"{k}={v}" for k, v in state.settings.search_options.items()])
        except search.OptionError as exc:
            raise UserError(f"{exc} (options are fixed at run; start a new session to change them)") from None
        previous = best_previous(state)
        seed_origin = "the best earlier kernel" if previous else "a fresh kernel"
        code, meta, verdict = previous or _fresh_seed(state, config, run)
        search.open_search(run.workflow, code, run.dir, options, seed_meta=meta,
                           seed_verdict=verdict if verdict.get("accepted") else None)
    note = "resumed" if resumed else f"started from {seed_origin}"
    return {"runs": state.with_current_run(run), "phase": "generate",
            "history": log(state, f"{run.workflow} run {run.index}: {note}")}


def search_round(state: SessionState, config: RunnableConfig) -> dict:
    """One round: propose children, evaluate them in parallel through the device pool or on Ray."""
    run = state.current_run.model_copy(deep=True)
    population = search.load_search(run.dir)
    device = state.env.verify_device if state.env else "cpu"
    workflow_tag = f"{run.workflow}_{run.index}"
    task_source = Path(state.task_path).read_text()
    generator = generator_for(state, config)
    propose = search.proposer_from_generator(generator, gen_context(state))
    store = ResultsStore()
    with ExitStack() as stack:
        try:
            pool = stack.enter_context(harness.evaluation_pool(population.opts.executor))
        except harness.HarnessInputError as exc:  # Ray missing or its cluster unreachable
            raise UserError(str(exc)) from None
        evaluate = search.with_cache(
            search.pool_evaluator(pool, state.task_path, Path(run.dir) / "scratch", dsl=state.params.dsl,
                                  timeout_s=state.settings.harness_timeout_s, trials=state.settings.trials,
                                  reference_timings=population.reference),
            *search.results_store_cache(store, task_source, device, session=state.session_id, workflow=workflow_tag,
                                        judge=harness.judge_key(device, state.params.dsl, state.settings.trials),
                                        statuses=harness.CACHEABLE_STATUSES),
        )
        population = search.run_round(population, propose, evaluate)
    for cand in population.candidates:  # model calls of this round's proposals, recorded once each
        if cand.meta.get("usage") and not cand.meta.get("usage_recorded"):
            for call in cand.meta["usage"]:
                store.record_llm_call(state.session_id, workflow_tag, call)
            cand.meta["usage_recorded"] = True
    population.save()
    progress = search.read_progress(run.dir)
    if progress is not None:
        emit({"kind": "progress", "text": search.format_progress(progress), "fraction": progress.fraction})
    run.iterations = population.round
    return {"runs": state.with_current_run(run)}


def search_done(state: SessionState) -> bool:
    return search.load_search(state.current_run.dir).status != "running"


def finish(state: SessionState) -> dict:
    run = state.current_run.model_copy(deep=True)
    population = search.load_search(run.dir)
    best = population.best
    run.finished = now_iso()
    run.iterations = population.round
    llm_calls = [u for c in population.candidates for u in c.meta.get("usage", [])]
    run.llm_usage = usage_totals(llm_calls) if llm_calls else {}
    if best is not None and best.accepted:
        code_path = Path(run.dir) / "best_candidate.py"
        code_path.write_text(best.code)
        run.status, run.code_path, run.verdict = "success", str(code_path), best.verdict
    else:
        run.status = "failed"
        run.error = f"no accepted kernel (search stopped: {population.stop_reason})"
    summary_line = (f"{population.evaluated_count} candidates evaluated, "
                    f"{len(population.arms)} accepted, stopped by {population.stop_reason}")
    updates = {"runs": state.with_current_run(run), "phase": "generate",
               "history": log(state, f"{run.workflow} run {run.index}: {run.status}; {summary_line}")}
    if run.status == "success":
        updates["pending"] = questions.review_result(run, state.settings.llm)
    return updates
