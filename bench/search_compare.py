"""kernelgen vs adaptive_search vs evolve on tasks of the embedded suite, side by side in one run.

For each task: the embedded kernel (what kernelgen accepts first), then both searches seeded with it
and given the same candidate budget, all judged by the same harness pool on the same device, with
the reference timed once per task. Prints a markdown table (and writes it to --out).

    python -m bench.search_compare --device cuda --candidates 6 --out search.md
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import harness
import search
from generators.base import GenContext
from generators.embedded import EmbeddedGenerator

TASKS = Path(__file__).parent / "tasks"
DEFAULT_TASKS = ("act_gelu", "act_composition", "norm_layernorm", "norm_rmsnorm", "log_softmax_lastdim",
                 "reduce_sum_dim1", "fused_bias_gelu_residual_layernorm", "fused_scale_softmax_dropoutfree_mul",
                 "loss_cross_entropy", "scan_cumsum")


def _fmt(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def kernelgen(task: Path, ctx: GenContext, pool: harness.DevicePool, scratch: Path) -> dict:
    started = time.monotonic()
    proposal = EmbeddedGenerator().generate(ctx)
    if not proposal.ok:
        return {"status": proposal.error, "wall_s": time.monotonic() - started}
    path = scratch / f"{task.stem}_kernelgen.py"
    path.write_text(proposal.code)
    verdict = pool.submit(str(task), str(path)).result().to_dict()
    return {"status": verdict["status"], "verdict": verdict, "code": proposal.code, "meta": proposal.meta,
            "eager": verdict.get("speedup_vs_eager"), "compile": verdict.get("speedup_vs_compile"),
            "evaluated": 1, "wall_s": time.monotonic() - started}


def run_search(workflow: str, task: Path, ctx: GenContext, pool: harness.DevicePool, seed: dict,
               candidates: int, out_dir: Path) -> dict:
    started = time.monotonic()
    pairs = [f"max_candidates={candidates}", "max_concurrent=2"]
    if workflow == "evolve":
        pairs += ["islands=2"]
    run_dir = out_dir / f"{task.stem}_{workflow}"
    state = search.start_search(workflow, seed["code"], run_dir, search.parse_options(workflow, pairs),
                                seed_meta=seed["meta"], seed_verdict=seed["verdict"])
    evaluate = search.pool_evaluator(pool, str(task), run_dir / "scratch", reference_timings=state.reference)
    propose = search.proposer_from_generator(EmbeddedGenerator(), ctx)
    state = search.run(state, propose, evaluate)
    best = state.best
    return {"status": state.stop_reason, "eager": best.speedup_vs_eager if best else None,
            "compile": best.speedup_vs_compile if best else None, "evaluated": state.evaluated_count,
            "accepted": len(state.arms), "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--candidates", type=int, default=6, help="budget of each search, seed included")
    parser.add_argument("--out", default=None)
    parser.add_argument("--workdir", default=None, help="where the runs' artefacts go (default: a temp dir)")
    args = parser.parse_args()
    out_dir = Path(args.workdir or tempfile.mkdtemp(prefix="akg_search_compare_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ["| task | kernelgen vs eager / compile | adaptive_search vs eager / compile (evaluated, s) | "
            "evolve vs eager / compile (evaluated, s) |", "|---|---|---|---|"]
    totals = {"evaluated": 0, "wall_s": 0.0}
    with harness.DevicePool([args.device] if args.device != "cuda" else None) as pool:
        for name in args.tasks.split(","):
            task = TASKS / f"{name}.py"
            ctx = GenContext(op_name=name, task_code=task.read_text(), device=args.device)
            seed = kernelgen(task, ctx, pool, out_dir)
            if seed["status"] != "accepted":
                rows.append(f"| {name} | {seed['status'][:60]} | - | - |")
                print(rows[-1], flush=True)
                continue
            cells = [f"{_fmt(seed['eager'])} / {_fmt(seed['compile'])} ({seed['wall_s']:.0f} s)"]
            for workflow in ("adaptive_search", "evolve"):
                result = run_search(workflow, task, ctx, pool, seed, args.candidates, out_dir)
                totals["evaluated"] += result["evaluated"]
                totals["wall_s"] += result["wall_s"]
                cells.append(f"{_fmt(result['eager'])} / {_fmt(result['compile'])} "
                             f"({result['evaluated']}, {result['wall_s']:.0f} s)")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    rate = totals["evaluated"] / (totals["wall_s"] / 60) if totals["wall_s"] else 0.0
    footer = f"\nSearch throughput through the pool: {rate:.1f} candidates/minute " \
             f"({totals['evaluated']} candidates in {totals['wall_s']:.0f} s, proposals included)."
    table = "\n".join(rows) + "\n" + footer + "\n"
    print(footer)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
