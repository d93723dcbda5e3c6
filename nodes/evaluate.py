"""Judging a candidate: the harness in an isolated worker, behind the results store's cache."""
from __future__ import annotations

from pathlib import Path

import harness
from checkpoints.results import ResultsStore, hash_text
from session_state import SessionState


def evaluate_candidate(state: SessionState, code_path: str, workflow: str) -> dict:
    """The verdict (as a dict) for `code_path` against the session's task; a candidate already
    judged definitively on this device by the same judge (same task text, same code, same harness
    version and trials) is served from the results store."""
    device = state.env.verify_device if state.env else "cpu"
    store = ResultsStore()
    task_hash = hash_text(Path(state.task_path).read_text())
    code_hash = hash_text(Path(code_path).read_text())
    judge = harness.judge_key(device, state.params.dsl, state.settings.trials)
    cached = store.lookup_verdict(task_hash, code_hash, device, judge, harness.CACHEABLE_STATUSES)
    if cached is not None:
        return {**cached, "cached": True}
    verdict = harness.verify(
        state.task_path, code_path, device=device, dsl=state.params.dsl,
        timeout_s=state.settings.harness_timeout_s, trials=state.settings.trials,
    ).to_dict()
    store.record_verdict(task_hash, code_hash, device, verdict, session=state.session_id, workflow=workflow,
                         judge=judge)
    return verdict
