"""How far the current workflow run has got, read from its run directory (what `status` and
`watch` show while a worker, possibly in another process, is running it)."""
from __future__ import annotations

from pathlib import Path

from session_state import SessionState


def run_progress(state: SessionState) -> tuple[str, float | None]:
    """(one line, fraction done or None) for the session's current run; ("", None) without one."""
    run = state.current_run
    if run is None:
        return "", None
    started = Path(run.dir).exists()
    if run.workflow == "kernelgen":
        from nodes.journal import read_attempts

        attempts = read_attempts(run.dir) if started else []
        limit = state.settings.max_iterations
        text = f"kernelgen run {run.index}: {len(attempts)}/{limit} iterations"
        if attempts:
            text += f", last {attempts[-1].status}"
        return text, 1.0 if run.status != "running" else len(attempts) / limit
    from search import format_progress, read_progress

    progress = read_progress(run.dir) if started else None
    if progress is None:
        return f"{run.workflow} run {run.index}: preparing the seed kernel", None
    return format_progress(progress), progress.fraction


def run_workers(state: SessionState) -> list[str]:
    """One line per worker that evaluated the current search run's candidates (none for kernelgen)."""
    run = state.current_run
    if run is None or run.workflow == "kernelgen" or not Path(run.dir).exists():
        return []
    from search import format_worker, read_progress

    progress = read_progress(run.dir)
    return [format_worker(w) for w in progress.workers] if progress is not None else []
