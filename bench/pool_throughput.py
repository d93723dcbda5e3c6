"""Evaluation throughput of an evolve search: the local pool vs the Ray executor, on 1 and 2 GPUs.

    python -m bench.pool_throughput --gpus 1,2 --executors local,ray --candidates 24 --json pool.json

For each (executor, GPU count): a fresh pool (Ray: a fresh local instance that sees only that many
GPUs), one warm-up evaluation of the seed per worker (fork servers and actors started; reported as
start_s, not counted), then an evolve search with the embedded generator for a fixed number of
candidates. candidates/minute counts evaluated candidates over the search's wall time (proposals
included); eval/min over the time spent inside evaluator calls only. Prints a markdown table.
Needs torch, triton, pydantic (and ray for the ray rows); nothing of the agent's graph.
`--device cpu` (CPU workers in the Triton interpreter, no timings) is a smoke test only.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import harness
import search
from generators.base import GenContext
from generators.embedded import EmbeddedGenerator
from search.progress import workers_of

TASKS = Path(__file__).parent / "tasks"


def open_pool(executor: str, workers: int, device: str):
    if executor == "local":
        devices = [f"cuda:{i}" for i in range(workers)] if device == "cuda" else ["cpu"] * workers
        return harness.DevicePool(devices=devices)
    import ray

    from harness.ray_executor import RayPool

    gpus = workers if device == "cuda" else 0
    ray.init(address="local", num_gpus=gpus, num_cpus=max(workers, os.cpu_count() or 1) if gpus else workers,
             include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    return RayPool(workers=workers, cpu_workers=workers)


def close_pool(executor: str, pool) -> None:
    pool.close()
    if executor == "ray":
        import ray

        ray.shutdown()


def measure(executor: str, workers: int, args, out_dir: Path) -> dict:
    task = TASKS / f"{args.task}.py"
    ctx = GenContext(op_name=args.task, task_code=task.read_text(), device=args.device)
    generator = EmbeddedGenerator()
    first = generator.generate(ctx)
    if not first.ok:
        raise SystemExit(f"the embedded generator gave no kernel for {args.task}: {first.error}")
    run_dir = out_dir / f"{executor}_{workers}"
    run_dir.mkdir(parents=True)
    seed_path = run_dir / "seed.py"
    seed_path.write_text(first.code)

    started = time.monotonic()
    pool = open_pool(executor, workers, args.device)
    try:
        warm = [pool.submit(str(task), str(seed_path)) for _ in range(workers)]
        seed_verdict = [f.result() for f in warm][0].to_dict()
        start_s = time.monotonic() - started
        if not seed_verdict["accepted"]:
            raise SystemExit(f"the seed kernel was rejected: {seed_verdict['summary']}")
        pairs = [f"max_candidates={args.candidates}", f"islands={args.islands}",
                 f"max_concurrent={args.concurrent}", "patience=1000", "time_budget_s=2h",
                 f"executor={executor}", f"seed={args.seed}"]
        if args.device == "cpu":
            pairs.append("require_timings=false")
        options = search.parse_options("evolve", pairs)
        state = search.start_search("evolve", first.code, run_dir / "evolve", options, seed_meta=first.meta,
                                    seed_verdict=seed_verdict)
        inner = search.pool_evaluator(pool, str(task), run_dir / "scratch", reference_timings=state.reference)
        in_evaluator = [0.0]

        def evaluate(codes):
            begun = time.monotonic()
            try:
                return inner(codes)
            finally:
                in_evaluator[0] += time.monotonic() - begun

        begun = time.monotonic()
        state = search.run(state, search.proposer_from_generator(generator, ctx), evaluate, artefacts=False)
        search_s = time.monotonic() - begun
    finally:
        close_pool(executor, pool)
    evaluated = state.evaluated_count - 1  # the seed was judged in the warm-up
    return {
        "executor": executor, "workers": workers, "device": args.device, "task": args.task,
        "candidates": len(state.candidates), "evaluated": evaluated, "accepted": len(state.arms),
        "stop_reason": state.stop_reason, "start_s": round(start_s, 1), "search_s": round(search_s, 1),
        "eval_s": round(in_evaluator[0], 1),
        "candidates_per_min": round(60.0 * evaluated / search_s, 2) if search_s else None,
        "eval_per_min": round(60.0 * evaluated / in_evaluator[0], 2) if in_evaluator[0] else None,
        "best_speedup_vs_eager": state.best.speedup_vs_eager if state.best else None,
        "per_worker": [{k: w.get(k) for k in ("host", "device", "worker", "actor", "pid", "candidates")}
                       for w in workers_of(state)],
    }


def table(rows: list[dict]) -> str:
    lines = ["| executor | GPUs | evaluated | search s | candidates/min | eval/min | start s | per worker |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        spread = " / ".join(str(w["candidates"]) for w in row["per_worker"])
        lines.append(f"| {row['executor']} | {row['workers']} | {row['evaluated']} | {row['search_s']} | "
                     f"{row['candidates_per_min']} | {row['eval_per_min']} | {row['start_s']} | {spread} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="softmax_lastdim", help="a task of bench/tasks (default softmax_lastdim)")
    parser.add_argument("--candidates", type=int, default=24, help="the search's budget, seed included")
    parser.add_argument("--gpus", default="1,2", help="GPU counts to try (CPU workers with --device cpu)")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--islands", type=int, default=4)
    parser.add_argument("--concurrent", type=int, default=4, help="candidates in flight (the same for every row)")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed: every row explores alike")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temp dir)")
    args = parser.parse_args()
    if not (TASKS / f"{args.task}.py").exists():
        raise SystemExit(f"no task {args.task!r} in {TASKS}")
    if args.device == "cuda":
        import torch

        counts = [int(n) for n in args.gpus.split(",")]
        if not torch.cuda.is_available() or torch.cuda.device_count() < max(counts):
            raise SystemExit(f"needs {max(counts)} CUDA devices, sees "
                             f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}")
    unknown = set(args.executors.split(",")) - set(harness.EXECUTORS)
    if unknown:
        raise SystemExit(f"unknown executor(s) {', '.join(sorted(unknown))} (known: {', '.join(harness.EXECUTORS)})")
    out_dir = Path(args.workdir or tempfile.mkdtemp(prefix="akg_pool_throughput_"))
    rows = []
    for executor in args.executors.split(","):
        for workers in (int(n) for n in args.gpus.split(",")):
            row = measure(executor, workers, args, out_dir)
            print(json.dumps(row), flush=True)  # a run cut short still reports what it measured
            rows.append(row)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
