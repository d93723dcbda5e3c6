"""What the CLI draws while a session runs: one line per finished step, a live spinner (with a bar
when the step knows its fraction) for the step in progress, and the `sessions` table.

The figures come from one model: search/progress.py's `Progress` (fraction + one line), read by
nodes/progress.py for `status`/`watch` and streamed as "progress" events while a search runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

# What runs after each step (or gate) finishes, for the spinner: steps of 10-60 s say what they do.
NEXT_ACTIVITY = {
    None: "env_setup: detecting the machine",
    "env_setup": "env_setup: proposing parameters",
    "confirm_params": "build_task: writing the task and validating it in a worker",
    "build_task": "build_task: done",
    "confirm_task": "choose_workflow",
    "choose_workflow": "generate: preparing the first kernel",
    "kernelgen": "kernelgen: finishing the run",
    "adaptive_search": "adaptive_search: finishing the run",
    "evolve": "evolve: finishing the run",
    "review_result": "integrate: backing up and writing files",
    "integrate": "report: writing report.md",
}
QUIET_STEPS = ("prepare", "generate", "fix", "verify", "round", "finish", "__interrupt__")


class StepDisplay:
    """Turns a session's stream events into printed lines and the live spinner's text."""

    def __init__(self, console: Console, progress: Progress | None = None):
        self.console = console
        self.progress = progress
        self.task = progress.add_task(NEXT_ACTIVITY[None], total=None) if progress is not None else None

    def _activity(self, text: str, fraction: float | None = None) -> None:
        if self.progress is None:
            return
        if fraction is None:
            self.progress.update(self.task, description=text, total=None)
        else:
            self.progress.update(self.task, description=text, total=1.0, completed=fraction)

    def on_event(self, kind: str, payload: dict) -> None:
        out = self.console
        if kind == "step":
            node = payload["node"]
            if node in QUIET_STEPS:
                return  # the custom events below say more about the loop
            params = (payload.get("update") or {}).get("params")
            if params is not None and not isinstance(params, dict):
                params = params.model_dump()
            detail = (f" ({params['backend']}/{params['arch']}/{params['dsl']})"
                      if node == "confirm_params" and params else "")
            out.print(f"[green]✓[/] {node}{detail}", highlight=False)
            self._activity(NEXT_ACTIVITY.get(node, f"{node}: done, going on"))
            return
        event = payload.get("kind")
        if event == "attempt":
            note = "" if payload.get("ok") else f" — no code: {payload.get('error')}"
            out.print(f"  [cyan]●[/] iteration {payload['iteration']}: {payload['action']}{note}", highlight=False)
            self._activity(f"verify: judging iteration {payload['iteration']} in the harness")
        elif event == "verdict":
            colour = "green" if payload["status"] == "accepted" else "yellow"
            first = ((payload.get("summary") or "").splitlines() or [""])[0]
            first = first.removeprefix(f"{payload['status'].upper()}: ")  # the status is already said
            out.print(f"    verdict [{colour}]{payload['status']}[/]: {first}", highlight=False)
            nxt = "finishing the run" if payload["status"] == "accepted" else f"fix: iteration {payload['iteration'] + 1}"
            self._activity(f"kernelgen: {nxt}")
        elif event == "tokens":
            self._activity(f"model: {payload['tokens']} tokens received")
        elif event == "progress":
            out.print(f"  ● {payload.get('text', '')}", highlight=False, markup=False)
            self._activity(payload.get("text", ""), payload.get("fraction"))


@contextmanager
def live_steps(console: Console):
    """A StepDisplay with a live spinner in a terminal (nothing live in a script or log)."""
    if not console.is_terminal:
        yield StepDisplay(console)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield StepDisplay(console, progress)


def short_time(iso: str) -> str:
    """'2026-11-27T09:52:59+00:00' → '11-27 09:52' in local time: short, and never cut."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%m-%d %H:%M")
    except ValueError:
        return iso


def true_status(row: dict, worker_alive: bool) -> str:
    """`running` only while a process drives the session; a killed one reads `stopped`."""
    status = row.get("status") or ""
    if status == "running" and not worker_alive:
        return "stopped (resume it)"
    return status


FIXED_COLUMNS = ("id", "op", "phase", "status", "updated")


def sessions_view(rows: list[dict], alive, width: int):
    """Whole words only. A table whose fixed columns keep their words on one line and whose request
    column wraps between words; where the terminal is too narrow for that, one line per session
    with its request indented below (wrapping between words too)."""
    cells = [[row["id"], row.get("op") or "", row.get("phase") or "", true_status(row, alive(row.get("pid"))),
              short_time(row.get("updated") or ""), row.get("request") or ""] for row in rows]
    fixed = sum(max([len(name)] + [len(c[i]) for c in cells]) + 3 for i, name in enumerate(FIXED_COLUMNS))
    longest_word = max([len(w) for c in cells for w in c[5].split()] + [len("request")])
    if width - fixed >= max(24, longest_word):
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
        for name in FIXED_COLUMNS:
            table.add_column(name, no_wrap=True)
        table.add_column("request", overflow="fold", ratio=1)
        for c in cells:
            table.add_row(*c)
        return table
    widths = [max([len(name)] + [len(c[i]) for c in cells]) for i, name in enumerate(FIXED_COLUMNS)]
    lines = [Text("  ".join(name.ljust(w) for name, w in zip(FIXED_COLUMNS, widths)).rstrip(), style="bold")]
    for c in cells:
        lines.append(Text("  ".join(v.ljust(w) for v, w in zip(c[:5], widths)).rstrip()))
        lines.append(Text("    " + c[5], style="dim"))  # rich wraps it between words
    return Group(*lines)
