"""Adapters from the project's parts to the two callables the search loop takes.

    propose(parent, inspirations, seed) -> Proposal      from a Generator's optimize()
    evaluate(codes) -> [verdict dict]                    through a harness pool (local or Ray)

plus a verdict cache (any lookup/store pair, e.g. the results store, or a JSONL file in the run dir)
so a resumed run never pays twice for a candidate that finished before the crash.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import as_completed
from pathlib import Path
from typing import Callable

from generators.base import CandidateInfo, GenContext, Generator, Proposal
from search.engine import Evaluate, Propose

Lookup = Callable[[str], "dict | None"]
Store = Callable[[str, dict], None]


def code_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def proposer_from_generator(generator: Generator, ctx: GenContext) -> Propose:
    def propose(parent: CandidateInfo, inspirations: list[CandidateInfo], seed: int) -> Proposal:
        return generator.optimize(ctx, parent, inspirations, seed)

    return propose


def _as_dict(verdict) -> dict:
    return verdict.to_dict() if hasattr(verdict, "to_dict") else dict(verdict)


def pool_evaluator(
    pool,
    task_path: str | Path,
    scratch_dir: str | Path,
    *,
    on_verdict: Store | None = None,
    **verify_kwargs,
) -> Evaluate:
    """Evaluate codes in parallel through `pool.submit(task_path, candidate_path, **kw)`.

    The search hands it at most `max_concurrent` codes per call, so that bounds what is in flight.
    `on_verdict(code, verdict)` fires as each one finishes (a crash mid-batch keeps the finished).
    A worker that raises becomes a rejected verdict, never an exception in the search. A verdict
    says under "worker" which worker made it, when the pool tells (harness.Evaluation.worker).
    """
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)

    def evaluate(codes: list[str]) -> list[dict]:
        futures = {}
        for index, code in enumerate(codes):
            path = scratch / f"eval_{code_key(code)[:16]}.py"
            path.write_text(code)
            futures[pool.submit(str(task_path), str(path), **verify_kwargs)] = index
        verdicts: list[dict | None] = [None] * len(codes)
        for future in as_completed(futures):
            index = futures[future]
            try:
                verdict = _as_dict(future.result())
                worker = getattr(future, "worker", None)
                if worker:
                    verdict["worker"] = worker
            except Exception as error:
                verdict = {
                    "status": "error",
                    "accepted": False,
                    "summary": f"evaluation crashed: {type(error).__name__}: {error}"[:500],
                }
            verdicts[index] = verdict
            if on_verdict is not None:
                on_verdict(codes[index], verdict)
        return verdicts  # type: ignore[return-value]

    return evaluate


def with_cache(evaluate: Evaluate, lookup: Lookup, store: Store | None = None) -> Evaluate:
    """Serve known codes from `lookup`, evaluate only the others, then `store` what was new."""

    def cached(codes: list[str]) -> list[dict]:
        results = [lookup(code) for code in codes]
        missing = [i for i, verdict in enumerate(results) if verdict is None]
        for verdict in results:
            if verdict is not None and verdict.get("worker"):
                # Judged earlier by that worker, served from the cache now.
                verdict["worker"] = {**verdict["worker"], "cached": True}
        if missing:
            fresh = evaluate([codes[i] for i in missing])
            for i, verdict in zip(missing, fresh):
                results[i] = verdict
                if store is not None:
                    store(codes[i], verdict)
        return results  # type: ignore[return-value]

    return cached


class VerdictFile:
    """An append-only JSONL cache of verdicts by code hash, for when no results store is wired.

    Appends are single small writes followed by fsync, so after a kill -9 at most the last line is
    torn; a torn line is skipped when reading.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._known: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self._known[entry["key"]] = entry["verdict"]
                except (ValueError, KeyError, TypeError):
                    continue

    def get(self, code: str) -> dict | None:
        return self._known.get(code_key(code))

    def put(self, code: str, verdict: dict) -> None:
        key = code_key(code)
        self._known[key] = verdict
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"key": key, "verdict": verdict}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def results_store_cache(
    store, task_source: str, device: str, *, session: str | None = None, workflow: str | None = None,
    judge: str = "", statuses: tuple[str, ...] | None = None,
) -> tuple[Lookup, Store]:
    """(lookup, store) over the results store (checkpoints.results.ResultsStore), keyed like its
    other users: (task hash, code hash, device, judge). Use as `with_cache(evaluate, *results_store_cache(...))`.
    judge: what judges the candidates (harness.judge_key(...)); statuses: the verdicts worth serving
    again (harness.CACHEABLE_STATUSES: a timeout or crash is judged afresh).
    """
    from checkpoints.results import hash_text  # the store's own identity, so all users agree

    task_hash = hash_text(task_source)

    def lookup(code: str) -> dict | None:
        return store.lookup_verdict(task_hash, hash_text(code), device, judge, statuses)

    def remember(code: str, verdict: dict) -> None:
        store.record_verdict(task_hash, hash_text(code), device, verdict, session=session, workflow=workflow,
                             judge=judge)

    return lookup, remember
