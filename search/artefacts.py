"""What a search run leaves in `output/{workflow}_{n}/`, rewritten after every round:

    candidates/cand_XXX.py, .json   each candidate's code and record (verdict, parent, speedups)
    summary.json                    options, counts, best, reference, history
    lineage.mmd                     parent → child graph (Mermaid), evolve grouped by island
    best_speedup.png                best speedup against candidates evaluated
    report_snippet.md               a section report.md can embed
    progress.json                   for `status` / `watch` (see search.progress)
    search_state.json               the resumable state (see search.state)
"""
from __future__ import annotations

import re
from pathlib import Path

from search.plots import write_speedup_plot
from search.progress import _clock, workers_of, write_progress
from search.state import Candidate, SearchState, write_json_atomic

MAX_EMBEDDED_LINEAGE = 40  # larger graphs stay in lineage.mmd; the report shows the best's line
_STATUS_CLASS = {
    "accepted": "accepted",
    "failed": "failed",
    "proposal_failed": "skipped",
    "duplicate": "skipped",
    "pending": "skipped",
}


def next_run_dir(output_dir: str | Path, workflow: str) -> Path:
    """`output/{workflow}_{n}` with n one past the highest existing run of that workflow."""
    output_dir = Path(output_dir)
    pattern = re.compile(rf"^{re.escape(workflow)}_(\d+)$")
    taken = [
        int(match.group(1))
        for path in (output_dir.iterdir() if output_dir.is_dir() else [])
        if (match := pattern.match(path.name))
    ]
    run_dir = output_dir / f"{workflow}_{max(taken, default=0) + 1}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


# -- per-candidate files -------------------------------------------------------------------------
def candidate_record(cand: Candidate) -> dict:
    record = cand.model_dump(mode="json", exclude={"code"})
    record["code_file"] = f"{cand.id}.py" if cand.code else None
    return record


def write_candidate_files(state: SearchState, run_dir: Path) -> None:
    folder = run_dir / "candidates"
    folder.mkdir(parents=True, exist_ok=True)
    for cand in state.candidates:
        if cand.status == "pending":
            continue
        record_path = folder / f"{cand.id}.json"
        if record_path.exists():  # settled candidates never change
            continue
        if cand.code:
            (folder / f"{cand.id}.py").write_text(cand.code)
        write_json_atomic(record_path, candidate_record(cand))


# -- lineage -------------------------------------------------------------------------------------
def _node_label(cand: Candidate, state: SearchState) -> str:
    parts = [cand.id]
    if cand.parent_id is None:
        parts.append("seed")
    if cand.accepted:
        parts.append(f"{cand.speedup_vs_eager:.2f}x" if cand.speedup_vs_eager else "ok")
    else:
        parts.append({"failed": "failed", "duplicate": "duplicate"}.get(cand.status, "no code"))
    return "<br/>".join(parts)


def ancestry(state: SearchState, cand_id: str) -> list[str]:
    """Ids from the seed down to `cand_id`."""
    chain = []
    current: str | None = cand_id
    while current is not None:
        chain.append(current)
        current = state.get(current).parent_id
    return chain[::-1]


def lineage_mermaid(state: SearchState, only: set[str] | None = None) -> str:
    """A Mermaid flowchart of parent → child edges; `only` restricts it to some ids."""
    cands = [c for c in state.candidates if only is None or c.id in only]
    lines = ["graph TD"]
    grouped = state.workflow == "evolve" and state.islands and only is None
    if grouped:
        roots = [c for c in cands if c.island is None]
        for cand in roots:
            lines.append(f'  {cand.id}["{_node_label(cand, state)}"]')
        for island in range(len(state.islands)):
            lines.append(f'  subgraph island_{island}["island {island}"]')
            for cand in cands:
                if cand.island == island:
                    lines.append(f'    {cand.id}["{_node_label(cand, state)}"]')
            lines.append("  end")
    else:
        for cand in cands:
            lines.append(f'  {cand.id}["{_node_label(cand, state)}"]')
    for cand in cands:
        if cand.parent_id is not None and (only is None or cand.parent_id in only):
            lines.append(f"  {cand.parent_id} --> {cand.id}")
    if grouped:
        shown = set()
        for move in state.migrations:
            for cand_id in move.ids:
                if (cand_id, move.target) not in shown:
                    shown.add((cand_id, move.target))
                    lines.append(f"  {cand_id} -. migrates .-> island_{move.target}")
    lines += [
        "  classDef accepted fill:#d8f0d8,stroke:#3a3",
        "  classDef failed fill:#f6d6d6,stroke:#a33",
        "  classDef skipped fill:#eeeeee,stroke:#999,stroke-dasharray:3 3",
        "  classDef best fill:#ffe680,stroke:#b80,stroke-width:3px",
    ]
    for css in ("accepted", "failed", "skipped"):
        ids = [c.id for c in cands if _STATUS_CLASS[c.status] == css and c.id != state.best_id]
        if ids:
            lines.append(f"  class {','.join(ids)} {css}")
    if state.best_id and any(c.id == state.best_id for c in cands):
        lines.append(f"  class {state.best_id} best")
    return "\n".join(lines) + "\n"


# -- summary and report --------------------------------------------------------------------------
def _counts(state: SearchState) -> dict:
    counts = {"total": len(state.candidates), "evaluated": state.evaluated_count}
    for status in ("accepted", "failed", "proposal_failed", "duplicate", "pending"):
        counts[status] = sum(1 for c in state.candidates if c.status == status)
    return counts


def summary_of(state: SearchState) -> dict:
    best = state.best
    seed = state.candidates[0] if state.candidates else None
    brief = ("id", "parent_id", "island", "round", "status", "time_ms", "speedup_vs_eager",
             "speedup_vs_compile", "error", "duplicate_of")
    return {
        "workflow": state.workflow,
        "status": state.status,
        "stop_reason": state.stop_reason,
        "options": state.options,
        "rounds": state.round,
        "counts": _counts(state),
        "evaluations": state.evaluations,
        "elapsed_s": round(state.elapsed_s, 3),
        # pool throughput, for the benchmarks: evaluated candidates per minute of search
        "candidates_per_minute": (
            round(60.0 * state.evaluated_count / state.elapsed_s, 2) if state.elapsed_s > 0 else None
        ),
        "reference": state.reference,
        "timed": any(c.time_ms is not None for c in state.arms),
        "seed": seed.model_dump(mode="json", include=set(brief)) if seed else None,
        "best": None if best is None else {
            **best.model_dump(mode="json", include=set(brief) | {"meta"}),
            "code_file": f"candidates/{best.id}.py",
            "lineage": ancestry(state, best.id),
        },
        "history": [point.model_dump(mode="json") for point in state.history],
        "migrations": [move.model_dump(mode="json") for move in state.migrations],
        "executor": state.options.get("executor", "local"),
        "workers": workers_of(state),
        "candidates": [
            {**c.model_dump(mode="json", include=set(brief)), "worker": (c.verdict or {}).get("worker")}
            for c in state.candidates
        ],
    }


def _fmt(value: float | None, suffix: str = "x") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def report_markdown(state: SearchState, run_dir: Path, relative_to: Path | None = None) -> str:
    """A report.md section; file links are relative to `relative_to` (default: the session dir)."""
    base = relative_to or run_dir.parent.parent
    try:
        rel = run_dir.relative_to(base).as_posix()
    except ValueError:
        rel = run_dir.as_posix()
    counts = _counts(state)
    best, seed = state.best, state.candidates[0]
    not_evaluated = counts["proposal_failed"] + counts["duplicate"]
    options = ", ".join(f"{k}={v}" for k, v in sorted(state.options.items()))
    lines = [
        f"### {state.workflow} (`{rel}`)",
        "",
        "| | |",
        "|---|---|",
        f"| Candidates | {counts['total']} of {state.opts.max_candidates}: {counts['evaluated']} evaluated, "
        f"{counts['accepted']} accepted, {counts['failed']} failed, {not_evaluated} not evaluated |",
    ]
    if best is not None:
        lines.append(
            f"| Best | `{best.id}`: {_fmt(best.speedup_vs_eager)} vs eager, "
            f"{_fmt(best.speedup_vs_compile)} vs torch.compile (seed: {_fmt(seed.speedup_vs_eager)}) |"
        )
    lines += [
        f"| Rounds, wall time | {state.round}, {_clock(state.elapsed_s)} "
        f"({state.status}: {state.stop_reason or 'running'}) |",
        f"| Options | {options} |",
        "",
    ]
    if any(c.time_ms is not None for c in state.arms):
        lines.append(f"![best speedup vs candidates evaluated]({rel}/best_speedup.png)")
    else:
        lines.append("No speed was measured (no GPU): the seed stays the best candidate"
                     + (", and the search stopped there (nothing to rank candidates by)."
                        if state.stop_reason == "no_timings" else "."))
    lines.append("")
    if best is not None:
        chain = ancestry(state, best.id)
        lines.append(f"Lineage of the best: {' → '.join(chain)}. Full graph: `{rel}/lineage.mmd`.")
        only = None if len(state.candidates) <= MAX_EMBEDDED_LINEAGE else set(chain)
        lines += ["", "```mermaid", lineage_mermaid(state, only).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_run_artefacts(state: SearchState, run_dir: str | Path | None = None) -> Path:
    run_dir = Path(run_dir or state.run_dir or ".")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_candidate_files(state, run_dir)
    (run_dir / "lineage.mmd").write_text(lineage_mermaid(state))
    write_speedup_plot(state, run_dir)
    write_json_atomic(run_dir / "summary.json", summary_of(state))
    (run_dir / "report_snippet.md").write_text(report_markdown(state, run_dir))
    write_progress(state, run_dir)
    return run_dir
