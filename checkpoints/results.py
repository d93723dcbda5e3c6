"""Results store: every verdict and LLM call in `$AKG_OP_HOME/results.db`, queryable with the
sqlite-utils CLI, e.g. `sqlite-utils query results.db "select status, count(*) from verdicts group by 1"`."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import sqlite_utils

from checkpoints.home import results_path
from checkpoints.redaction import redact_tree


def default_results_path() -> Path:
    return results_path()


def hash_text(text: str) -> str:
    """Content hash used for task and code identity (sha256, first 16 hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _timing(verdict: dict, which: str) -> float | None:
    timings = verdict.get("timings") or {}
    return (timings.get(which) or {}).get("median_ms")


class ResultsStore:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_results_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self._create_tables()

    def _create_tables(self) -> None:
        if "verdicts" not in self.db.table_names():
            self.db["verdicts"].create({
                "id": int, "created_at": str, "task_hash": str, "code_hash": str, "device": str,
                "device_name": str, "session": str, "workflow": str, "status": str, "accepted": int,
                "summary": str, "max_abs_err": float, "max_rel_err": float, "triton_launches": int,
                "candidate_ms": float, "eager_ms": float, "compile_ms": float,
                "speedup_vs_eager": float, "speedup_vs_compile": float,
                "torch_version": str, "triton_version": str, "verdict_json": str, "judge": str,
            }, pk="id")
            self.db["verdicts"].create_index(["task_hash", "code_hash", "device"])
        elif "judge" not in self.db["verdicts"].columns_dict:  # a store from before verdicts named their judge
            self.db["verdicts"].add_column("judge", str)
        if "llm_calls" not in self.db.table_names():
            self.db["llm_calls"].create({
                "id": int, "created_at": str, "session": str, "workflow": str, "model": str,
                "prompt_tokens": int, "completion_tokens": int, "total_tokens": int, "cost_usd": float,
                "usage_json": str,
            }, pk="id")
            self.db["llm_calls"].create_index(["session"])

    # -- verdicts ---------------------------------------------------------------------------------------
    def record_verdict(self, task_hash: str, code_hash: str, device: str, verdict_dict: dict,
                       session: str | None = None, workflow: str | None = None, judge: str = "") -> int:
        """judge: what judged it (harness version, trials, dsl...), part of the cache key."""
        verdict_dict = redact_tree(verdict_dict)
        versions = verdict_dict.get("versions") or {}
        row = {
            "created_at": _now(), "task_hash": task_hash, "code_hash": code_hash, "device": device,
            "device_name": verdict_dict.get("device_name"), "session": session, "workflow": workflow,
            "status": verdict_dict.get("status"), "accepted": int(verdict_dict.get("status") == "accepted"),
            "summary": verdict_dict.get("summary"), "max_abs_err": verdict_dict.get("max_abs_err"),
            "max_rel_err": verdict_dict.get("max_rel_err"), "triton_launches": verdict_dict.get("triton_launches"),
            "candidate_ms": _timing(verdict_dict, "candidate"), "eager_ms": _timing(verdict_dict, "eager"),
            "compile_ms": _timing(verdict_dict, "compile"),
            "speedup_vs_eager": verdict_dict.get("speedup_vs_eager"),
            "speedup_vs_compile": verdict_dict.get("speedup_vs_compile"),
            "torch_version": versions.get("torch"), "triton_version": versions.get("triton"),
            "verdict_json": json.dumps(verdict_dict, sort_keys=True), "judge": judge,
        }
        return self.db["verdicts"].insert(row).last_pk

    def lookup_verdict(self, task_hash: str, code_hash: str, device: str, judge: str = "",
                       statuses: tuple[str, ...] | None = None) -> dict | None:
        """The latest verdict for this task, code, device and judge, or None. statuses: only
        verdicts with one of these statuses count (the definitive ones; a timeout is no answer)."""
        where = "task_hash = ? and code_hash = ? and device = ? and coalesce(judge, '') = ?"
        params = [task_hash, code_hash, device, judge]
        if statuses is not None:
            where += f" and status in ({', '.join('?' * len(statuses))})"
            params += list(statuses)
        rows = list(self.db["verdicts"].rows_where(where, params, order_by="id desc", limit=1))
        return json.loads(rows[0]["verdict_json"]) if rows else None

    def cached_verdict(self, task_source: str, code_source: str, device: str, run: Callable[[], dict], *,
                       force: bool = False, session: str | None = None, workflow: str | None = None,
                       judge: str = "", statuses: tuple[str, ...] | None = None) -> dict:
        """The stored verdict for this exact task, code, device and judge; otherwise run() (e.g.
        `lambda: harness.verify(...).to_dict()`), store its verdict and return it. force re-runs."""
        task_hash, code_hash = hash_text(task_source), hash_text(code_source)
        if not force:
            stored = self.lookup_verdict(task_hash, code_hash, device, judge, statuses)
            if stored is not None:
                return stored
        verdict = run()
        self.record_verdict(task_hash, code_hash, device, verdict, session=session, workflow=workflow, judge=judge)
        return verdict

    # -- LLM usage ------------------------------------------------------------------------------------
    def record_llm_call(self, session: str, workflow: str | None, usage_dict: dict) -> int:
        usage_dict = redact_tree(usage_dict)
        prompt = int(usage_dict.get("prompt_tokens") or usage_dict.get("input_tokens") or 0)
        completion = int(usage_dict.get("completion_tokens") or usage_dict.get("output_tokens") or 0)
        row = {
            "created_at": _now(), "session": session, "workflow": workflow, "model": usage_dict.get("model"),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage_dict.get("total_tokens") or prompt + completion),
            "cost_usd": usage_dict.get("cost_usd"), "usage_json": json.dumps(usage_dict, sort_keys=True),
        }
        return self.db["llm_calls"].insert(row).last_pk

    def llm_totals(self, session: str) -> dict:
        row = next(self.db.query(
            "select count(*) as calls, coalesce(sum(prompt_tokens), 0) as prompt_tokens, "
            "coalesce(sum(completion_tokens), 0) as completion_tokens, "
            "coalesce(sum(total_tokens), 0) as total_tokens, coalesce(sum(cost_usd), 0.0) as cost_usd "
            "from llm_calls where session = ?", [session]))
        return dict(row)
