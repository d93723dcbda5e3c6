"""Sweep the extern templates' tunables on a GPU, timed the way the harness times (one process).

    python -m bench.extern_sweep bench/tasks/mm_square_fp16.py \
        --try 'mm.BLOCK_N=128,mm.num_stages=4' --try 'mm.BLOCK_K=32' [--compile] [--json out.json]

For each task: eager (and torch.compile with --compile) once, then the lowering with its default
tunables and with each --try set. Every variant is checked against eager first (max abs error over
the output's magnitude) and timed with harness.timing (L2 flushed before each call, CUDA events,
median of 100 calls, the host given a head start), the same protocol `verify` uses, so the winner
can become the default; the host time one call's launch takes is shown beside it.
The harness itself (bench.run_suite) remains the source of the reported figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import codegen  # noqa: E402
from codegen.extern.loading import load_generated  # noqa: E402
from harness.timing import L2Flusher, sync_overhead_ms, time_callable  # noqa: E402


def parse_tunables(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = value
    return out


def lower_with(path: Path, tried: dict, target: str = "cuda") -> codegen.Lowering:
    """The task lowered with `tried`; not ok when a key of it is not a knob of this task's file
    (its row would time the defaults under another name)."""
    low = codegen.lower(path.read_text(), tunables=tried, target=target)
    foreign = sorted(k for k in tried if k not in low.space)
    if low.ok and foreign:
        low.ok, low.reason = False, f"not tunables of this task: {', '.join(foreign)}"
    return low


def _task_namespace(path: Path) -> dict:
    ns: dict = {"__name__": path.stem}
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return ns


def sweep_task(path: Path, tries: list[str], with_compile: bool, flush, overhead, log=print) -> list[dict]:
    ns = _task_namespace(path)
    torch.manual_seed(0)
    model = ns["Model"](*ns["get_init_inputs"]()).cuda().eval()
    inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in ns["get_inputs"]()]
    rows = []
    with torch.no_grad():
        ref = model(*inputs)
        eager_t = time_callable(model, inputs, flush=flush, overhead_ms=overhead)
        eager = eager_t["median_ms"]
        compiled_ms = None
        if with_compile:
            compiled = torch.compile(model)
            compiled(*inputs)
            compiled_ms = time_callable(compiled, inputs, flush=flush, overhead_ms=overhead)["median_ms"]
        for text in [""] + tries:
            row = {"task": path.stem, "try": text or "default", "eager_ms": eager, "compile_ms": compiled_ms}
            try:
                low = lower_with(path, parse_tunables(text))
                if not low.ok:
                    row["error"] = low.reason
                    rows.append(row)
                    log(json.dumps(row))
                    continue
                gen = load_generated(low.code, f"{path.stem}_sweep")
                new = gen["ModelNew"](*ns["get_init_inputs"]()).cuda().eval()
                new.load_state_dict(model.state_dict())
                out = new(*inputs)
                scale = ref.float().abs().max().item()
                row["rel_err"] = (ref.float() - out.float()).abs().max().item() / max(scale, 1e-6)
                ours = time_callable(new, inputs, flush=flush, overhead_ms=overhead)
                row["ours_ms"], row["launch_us"] = ours["median_ms"], ours["launch_us"]
                row["eager_launch_us"] = eager_t["launch_us"]
                row["vs_eager"] = eager / row["ours_ms"]
                if compiled_ms:
                    row["vs_compile"] = compiled_ms / row["ours_ms"]
            except Exception as e:  # report and go on: one failing variant must not hide the rest
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            rows.append(row)
            log(json.dumps(row))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| task | tunables | eager ms | compile ms | ours ms | vs eager | vs compile | eager launch µs |"
             " ours launch µs | rel err |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['task']} | {r['try']} | | | | | | | | {r['error']} |")
            continue
        lines.append(f"| {r['task']} | {r['try']} | {f(r['eager_ms'])} | {f(r.get('compile_ms'))} | "
                     f"{f(r['ours_ms'])} | {f(r['vs_eager'], 2)} | {f(r.get('vs_compile'), 2)} | "
                     f"{f(r['eager_launch_us'], 0)} | {f(r['launch_us'], 0)} | {r['rel_err']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extern_sweep")
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--try", dest="tries", action="append", default=[],
                        help="a tunable set to time on every task, e.g. mm.BLOCK_N=128,mm.num_stages=4")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(reference)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--budget-s", type=float, default=1e9, help="skip the remaining tasks after this")
    args = parser.parse_args(argv)
    flush = L2Flusher()
    overhead = sync_overhead_ms(flush)
    start, rows = time.time(), []
    for task in args.tasks:
        if time.time() - start > args.budget_s:
            print(f"{task}: skipped, time budget spent", flush=True)
            continue
        rows += sweep_task(Path(task), args.tries, args.compile, flush, overhead,
                           log=lambda s: print(s, flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
