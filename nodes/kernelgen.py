"""The kernelgen loop's steps: generate → verify → fix → verify … (wired in graph/kernelgen.py).

Each step records what it did in the run's journal before returning, so a killed process resumes
after the last completed step (see nodes/journal.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from langchain_core.runnables import RunnableConfig

from checkpoints.results import ResultsStore
from generators.base import Proposal
from generators.usage import usage_totals
from session_state import Attempt, RunRecord, SessionState, log, now_iso
from nodes import journal, questions
from nodes.context import emit, gen_context, generator_for
from nodes.errors import UserError
from nodes.evaluate import evaluate_candidate


def prepare(state: SessionState) -> dict:
    """Start the run, or pick it up from its journal after an interruption."""
    run = state.current_run.model_copy(deep=True)
    Path(run.dir).mkdir(parents=True, exist_ok=True)
    run.attempts = journal.read_attempts(run.dir)
    run.iterations = len(run.attempts)
    note = f"resumed at iteration {run.iterations}" if run.attempts else "started"
    return {"runs": state.with_current_run(run), "phase": "generate",
            "history": log(state, f"kernelgen run {run.index}: {note}")}


def _stop_unreachable(state: SessionState, proposal: Proposal) -> None:
    """The model gave no reply at all: write a failure report, then stop this step without
    recording an attempt, so `akg-op resume` retries it once the endpoint is back."""
    from nodes.report import render_report

    path = Path(state.session_dir) / "report.md"
    path.write_text(render_report(state) + f"\n## Interrupted\n\nThe model could not be reached: {proposal.error}\n")
    raise UserError(f"the model could not be reached: {proposal.error}; report at {path}")


def _record_usage(session_id: str, run: RunRecord, usage: list[dict]) -> None:
    store = ResultsStore()
    for call in usage:
        store.record_llm_call(session_id, f"{run.workflow}_{run.index}", call)


def _record(state: SessionState, action: str, proposal: Proposal) -> dict:
    run = state.current_run.model_copy(deep=True)
    k = run.iterations + 1
    usage = [u.model_dump() for u in proposal.usage]
    _record_usage(state.session_id, run, usage)
    if proposal.meta.get("error_kind") == "endpoint":
        _stop_unreachable(state, proposal)
    code_path = journal.write_proposal(run.dir, k, action, proposal.code if proposal.ok else None,
                                       proposal.error, proposal.meta, usage)
    attempt = Attempt(iteration=k, action=action, code_path=str(code_path) if code_path else None,
                      give_up=bool(proposal.meta.get("give_up")))
    if code_path is None:
        attempt.status = "no_code"
        attempt.summary = proposal.error or "the generator returned no code"
        attempt.error_signature = journal.error_signature(attempt.status, attempt.summary)
    run.attempts.append(attempt)
    run.iterations = k
    emit({"kind": "attempt", "iteration": k, "action": action, "ok": code_path is not None,
          "error": proposal.error})
    return {"runs": state.with_current_run(run),
            "history": log(state, f"kernelgen: iteration {k} {action}"
                                  + ("" if code_path else f" gave no code ({attempt.summary[:120]})"))}


def generate(state: SessionState, config: RunnableConfig) -> dict:
    generator = generator_for(state, config)
    ctx = gen_context(state)
    proposal = _another_point(state, generator, ctx) or generator.generate(ctx)
    return _record(state, "generate", proposal)


def _knobs_in_use(meta: dict) -> dict:
    """The part of the embedded compiler's tunable space its kernels read: a pointwise relu has no
    use for a reduction's block sizes, so moving one would change a constant and nothing else."""
    space = meta.get("space") or {}
    kinds = " ".join(meta.get("kernels") or [])
    prefixes = ["num_stages"]
    if "pointwise" in kinds:
        prefixes.append("pointwise.")
    if "row kernel" in kinds or "reduction" in kinds:
        prefixes.append("reduce.")
    if len(prefixes) == 1:  # kernels of other kinds (templates): every knob may matter
        return space
    return {k: v for k, v in space.items() if k.startswith(tuple(prefixes))}


def _another_point(state: SessionState, generator, ctx) -> Proposal | None:
    """`regenerate` with the embedded generator: the same compiler would write the same file again,
    so the new run starts from another point of its tunable space, one no earlier run produced.
    None when this does not apply (a model, or no accepted kernel yet)."""
    from generators.base import CandidateInfo
    from nodes.search_run import best_previous

    if getattr(generator, "name", "") != "embedded":
        return None
    previous = best_previous(state)
    if previous is None or not previous[1].get("space"):
        return None
    code, meta, verdict = previous
    tried = {Path(r.code_path).read_text() for r in state.runs[:-1] if r.code_path and Path(r.code_path).exists()}
    parent = CandidateInfo(id="previous", code=code, meta={**meta, "space": _knobs_in_use(meta)}, verdict=verdict)
    for attempt in range(8):
        proposal = generator.optimize(ctx, parent, [], seed=1000 * state.current_run.index + attempt)
        if not proposal.ok or proposal.code not in tried:
            return proposal
    return Proposal(error="the embedded generator found no untried point of its tunable space near the "
                          "accepted kernel", meta={"give_up": True})


def fix(state: SessionState, config: RunnableConfig) -> dict:
    from generators.feedback import summarize_attempt, summarize_verdict

    run = state.current_run
    last_with_code = next((a for a in reversed(run.attempts) if a.code_path), None)
    if last_with_code is None:  # nothing to fix yet: ask for a fresh kernel
        return generate(state, config)
    # The attempt being fixed is described in full by `feedback`; the history holds the others.
    history = [summarize_attempt(a.iteration, journal.read_verdict(run.dir, a.iteration)
                                 or {"status": a.status, "summary": a.summary})
               for a in run.attempts if a.iteration != last_with_code.iteration]
    verdict = journal.read_verdict(run.dir, last_with_code.iteration) or {}
    feedback = summarize_verdict(verdict)
    code = Path(last_with_code.code_path).read_text()
    proposal = generator_for(state, config).fix(gen_context(state), code, feedback, history)
    return _record(state, "fix", proposal)


def verify(state: SessionState) -> dict:
    run = state.current_run.model_copy(deep=True)
    attempt = run.attempts[-1]
    emit({"kind": "verify", "iteration": attempt.iteration})
    verdict = evaluate_candidate(state, attempt.code_path, f"{run.workflow}_{run.index}")
    journal.write_verdict(run.dir, attempt.iteration, verdict)
    attempt.status, attempt.accepted = verdict.get("status", "unknown"), bool(verdict.get("accepted"))
    attempt.summary = verdict.get("summary", "")
    if not attempt.accepted:
        attempt.error_signature = journal.error_signature(attempt.status, attempt.summary)
    emit({"kind": "verdict", "iteration": attempt.iteration, "status": attempt.status,
          "summary": attempt.summary})
    return {"runs": state.with_current_run(run),
            "history": log(state, f"kernelgen: iteration {attempt.iteration} verdict {attempt.status}")}


def finish(state: SessionState) -> dict:
    """Close the run: success when the last attempt was accepted; write its summary.json."""
    run = state.current_run.model_copy(deep=True)
    last = run.attempts[-1] if run.attempts else None
    run.finished = now_iso()
    run.llm_usage = usage_totals(journal.read_usage(run.dir))
    if last is not None and last.accepted:
        run.status = "success"
        run.code_path = last.code_path
        run.verdict = journal.read_verdict(run.dir, last.iteration)
    else:
        run.status = "failed"
        run.error = _failure_reason(run, state.settings.max_iterations)
        if last is not None and last.code_path:
            run.code_path = last.code_path
            run.verdict = journal.read_verdict(run.dir, last.iteration)
    summary = {"workflow": run.workflow, "index": run.index, "status": run.status,
               "iterations": run.iterations, "error": run.error, "llm_usage": run.llm_usage,
               "attempts": [a.model_dump() for a in run.attempts], "final_code": run.code_path,
               "final_verdict": run.verdict}
    (Path(run.dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    updates = {"runs": state.with_current_run(run), "phase": "generate",
               "history": log(state, f"kernelgen run {run.index}: {run.status} after {run.iterations} iteration(s)")}
    if run.status == "success":
        updates["pending"] = questions.review_result(run, state.settings.llm)
    return updates


def _failure_reason(run: RunRecord, max_iterations: int) -> str:
    last = run.attempts[-1] if run.attempts else None
    if last is None:
        return "no attempt was made"
    reason = last.summary.splitlines()[0] if last.summary else last.status
    if last.status == "timeout":  # a slow reference leaves a candidate little of the judge's time
        reason += " (a slow task can be given longer: --judge-timeout SECONDS)"
    if last.give_up:
        return f"the generator cannot handle this task: {reason}"
    if run.iterations >= max_iterations:
        return f"no accepted kernel after {run.iterations} iterations; last: {last.status}: {reason}"
    return f"the same error repeated; last: {last.status}: {reason}"
