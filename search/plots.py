"""The search run's chart, drawn with matplotlib on the headless Agg backend.

One figure: every evaluated candidate's speedup against eager PyTorch (dots, one colour per island
for evolve), each island's best so far (thin steps, evolve only), the run's best so far (thick steps)
and the 1.0x line (parity with eager). A run that timed nothing (CPU) gets no chart: the report says
that no speed was measured instead of showing an empty plot.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from search.state import SearchState

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_FILE = "best_speedup.png"


def _evaluated(state: SearchState):
    """(n-th evaluated candidate, candidate) for candidates the harness judged, in order."""
    n = 0
    for cand in state.candidates:
        if cand.status in ("accepted", "failed"):
            n += 1
            yield n, cand


def _best_so_far(points: list[tuple[int, float]], total: int) -> tuple[list[int], list[float]]:
    xs, ys, best = [], [], None
    for x, y in points:
        if best is None or y > best:
            best = y
            xs.append(x)
            ys.append(y)
    if xs:  # hold the last best to the end of the run
        xs.append(max(total, xs[-1]))
        ys.append(ys[-1])
    return xs, ys


def speedup_figure(state: SearchState) -> Figure | None:
    """The chart as a Figure, or None when no candidate was timed."""
    timed = [(n, c) for n, c in _evaluated(state) if c.accepted and c.speedup_vs_eager is not None]
    if not timed:
        return None
    total = state.evaluated_count
    # Imported here: a search without artefacts (a device benchmark) runs without matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # no display: sessions run in terminals, workers and servers
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    islands = sorted({c.island for _, c in timed if c.island is not None})
    if state.workflow == "evolve" and islands:
        for island in islands:
            points = [(n, c.speedup_vs_eager) for n, c in timed if c.island in (island, None)]
            colour = f"C{(island + 1) % 10}"
            ax.scatter([x for x, _ in points], [y for _, y in points], s=14, color=colour, alpha=0.6)
            xs, ys = _best_so_far(points, total)
            ax.step(xs, ys, where="post", color=colour, linewidth=1, label=f"island {island} best")
    else:
        ax.scatter([n for n, _ in timed], [c.speedup_vs_eager for _, c in timed], s=14, color="C0",
                   alpha=0.6, label="accepted candidate")
    xs, ys = _best_so_far([(n, c.speedup_vs_eager) for n, c in timed], total)
    ax.step(xs, ys, where="post", color="black", linewidth=2.2, label="best so far")
    ax.axhline(1.0, color="C3", linestyle="--", linewidth=1, label="eager PyTorch (1.0x)")
    ax.set_title(f"{state.workflow}: speedup over {total} evaluated candidates")
    ax.set_xlabel("candidates evaluated (count)")
    ax.set_ylabel("speedup vs eager PyTorch (x, higher is faster)")
    ax.set_xlim(0, max(total, 1) + 0.5)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def write_speedup_plot(state: SearchState, run_dir: str | Path) -> Path | None:
    """Write `best_speedup.png` into the run directory; remove a stale one when nothing was timed."""
    path = Path(run_dir) / PLOT_FILE
    fig = speedup_figure(state)
    if fig is None:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)  # a reader (the report, a browser) never sees half a file
    return path
