"""progress.json: a small, atomically replaced summary of a running search, for `status` / `watch`.

The search process writes it after every round; any other process may read it at any time (it is
replaced by rename, so a reader never sees half a file).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from search.state import SearchState, write_json_atomic

PROGRESS_FILE = "progress.json"


class Progress(BaseModel):
    workflow: str
    status: Literal["running", "finished", "failed"]
    stop_reason: str | None = None
    round: int
    candidates_done: int  # proposed and settled (evaluated, failed to propose, or duplicate)
    budget: int  # max_candidates
    evaluated: int
    accepted: int
    best_id: str | None = None
    best_speedup: float | None = None  # vs eager; None where nothing was timed (CPU)
    best_speedup_vs_compile: float | None = None
    elapsed_s: float
    eta_s: float | None = None
    time_budget_s: float
    updated_at: float  # unix time of the write: a stale value means the worker is gone
    executor: str = "local"
    workers: list[dict] = []  # who evaluated the candidates so far (workers_of)

    @property
    def fraction(self) -> float:
        if self.status != "running":
            return 1.0
        by_count = self.candidates_done / max(1, self.budget)
        by_time = self.elapsed_s / max(1e-9, self.time_budget_s)
        return min(1.0, max(by_count, by_time))


def estimate_eta(state: SearchState) -> float | None:
    """Seconds left: remaining candidates at the pace so far, capped by the time budget."""
    if state.status != "running":
        return 0.0
    opts = state.opts
    done = len(state.candidates) - len(state.pending)
    left_by_time = max(0.0, opts.time_budget_s - state.elapsed_s)
    if done < 2 or state.elapsed_s <= 0:
        return left_by_time
    per_candidate = state.elapsed_s / done
    left = max(0, opts.max_candidates - done) * per_candidate
    return min(left, left_by_time)


def progress_of(state: SearchState) -> Progress:
    opts = state.opts
    best = state.best
    return Progress(
        workflow=state.workflow,
        status=state.status,
        stop_reason=state.stop_reason,
        round=state.round,
        candidates_done=len(state.candidates) - len(state.pending),
        budget=opts.max_candidates,
        evaluated=state.evaluated_count,
        accepted=len(state.arms),
        best_id=best.id if best else None,
        best_speedup=best.speedup_vs_eager if best else None,
        best_speedup_vs_compile=best.speedup_vs_compile if best else None,
        elapsed_s=round(state.elapsed_s, 3),
        eta_s=None if (eta := estimate_eta(state)) is None else round(eta, 1),
        time_budget_s=opts.time_budget_s,
        updated_at=time.time(),
        executor=opts.executor,
        workers=workers_of(state),
    )


def _worker_key(worker: dict) -> tuple:
    return tuple(str(worker.get(k)) for k in ("executor", "host", "device", "worker", "actor", "pid"))


def workers_of(state: SearchState) -> list[dict]:
    """The workers that evaluated this run's candidates (cache hits aside), each with its count."""
    seen: dict[tuple, dict] = {}
    for cand in state.candidates:
        worker = (cand.verdict or {}).get("worker")
        if not worker or worker.get("cached") or "lost" in worker:
            continue
        entry = {k: v for k, v in worker.items() if k != "retried_after"}
        seen.setdefault(_worker_key(entry), {**entry, "candidates": 0})["candidates"] += 1
    return list(seen.values())


def format_worker(worker: dict) -> str:
    """`ray vm cuda:0 actor 33cf6007 pid 2550: 12 candidates`."""
    name = f"actor {worker['actor'][:8]}" if worker.get("actor") else worker.get("worker") or "?"
    count = worker.get("candidates", 0)
    return (f"{worker.get('executor', '?')} {worker.get('host', '?')} {worker.get('device', '?')} {name} "
            f"pid {worker.get('pid')}: {count} candidate{'' if count == 1 else 's'}")


def write_progress(state: SearchState, run_dir: str | Path | None = None) -> Path:
    target = Path(run_dir or state.run_dir or ".") / PROGRESS_FILE
    write_json_atomic(target, progress_of(state).model_dump(mode="json"))
    return target


def read_progress(run_dir: str | Path) -> Progress | None:
    """The run's progress, or None when there is none (yet) or it cannot be read."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / PROGRESS_FILE
    try:
        return Progress.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def latest_run_progress(output_dir: str | Path) -> tuple[Path, Progress] | None:
    """The most recently updated search run under a session's `output/` directory."""
    found = []
    for path in Path(output_dir).glob(f"*/{PROGRESS_FILE}"):
        progress = read_progress(path)
        if progress is not None:
            found.append((progress.updated_at, path.parent, progress))
    if not found:
        return None
    _, run_dir, progress = max(found, key=lambda item: item[0])
    return run_dir, progress


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_progress(progress: Progress) -> str:
    """One line, e.g. `evolve: 12/80 candidates, 10 accepted, best 1.84x vs eager, 03:12 elapsed,
    ETA 09:40`. No bar: a display draws `progress.fraction` its own way (the CLI with rich)."""
    if progress.best_speedup is not None:
        best = f"best {progress.best_speedup:.2f}x vs eager"
        if progress.best_speedup_vs_compile is not None:
            best += f" ({progress.best_speedup_vs_compile:.2f}x vs compile)"
    else:
        best = "no timings (CPU)"
    tail = (
        f"ETA {_clock(progress.eta_s)}"
        if progress.status == "running"
        else f"{progress.status}: {progress.stop_reason}"
    )
    return (
        f"{progress.workflow}: {progress.candidates_done}/{progress.budget} candidates, "
        f"{progress.accepted} accepted, {best}, {_clock(progress.elapsed_s)} elapsed, {tail}"
    )
