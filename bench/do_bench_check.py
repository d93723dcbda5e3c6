"""Time generated kernels with `triton.testing.do_bench`, independently of the harness.

    python -m bench.do_bench_check --tasks bench/tasks --kernels before=DIR_A --kernels after=DIR_B
           [--only PATTERN] [--json FILE] [--out FILE.md]

Each DIR holds `{task}.py` files (a generated ModelNew each, e.g. from `python -m bench.run_suite
--keep DIR` or `python -m codegen TASK.py -o DIR/TASK.py`). For every task that has a kernel in at
least one DIR: the reference Model and each ModelNew are built with the same weights, run once on the
same inputs (a kernel whose outputs disagree with the reference is reported, not timed), then timed
with do_bench (median of its own repetitions, L2 cleared by do_bench between calls), side by side in
one process. The eager reference is timed the same way. This is the cross-check for the harness's
figures and the before/after table of a code-generator change: nothing here shares code with the
harness's timing. Outputs are judged as the harness judges them (bench/output_check.py: its
per-dtype tolerances and float64 second opinion), so a kernel more exact than an fp32 reference
(a long cumsum) is not reported wrong.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import torch
import triton.testing

from bench.output_check import output_problem
from bench.selection import matches
from nodes.task_files import op_name_from

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_ms(fn) -> float:
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def time_task(task_path: Path, kernels: dict[str, Path]) -> dict:
    task = _load(task_path, f"task_{task_path.stem}")
    torch.manual_seed(0)
    init = task.get_init_inputs()
    reference = task.Model(*init).cuda().eval()
    with torch.device("cuda"):
        inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in task.get_inputs()]
    row: dict = {"task": task_path.stem}
    with torch.no_grad():
        expected = reference(*inputs)
        row["eager_ms"] = _median_ms(lambda: reference(*inputs))
        for label, path in kernels.items():
            try:
                module = _load(path, f"{label}_{task_path.stem}")
                model = module.ModelNew(*init).cuda().eval()
                model.load_state_dict(reference.state_dict())
                problem = output_problem(model(*inputs), expected, reference, inputs)
                if problem:
                    row[label] = "wrong output"
                    row[f"{label}_problem"] = problem
                    print(f"{task_path.stem} {label}: wrong output: {problem}", file=sys.stderr, flush=True)
                    continue
                row[label] = _median_ms(lambda: model(*inputs))
            except Exception as error:  # a kernel that does not build or run here
                row[label] = f"error: {type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
    del inputs, expected, reference
    torch.cuda.empty_cache()
    return row


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def table(rows: list[dict], labels: list[str]) -> str:
    head = ["task", "eager ms"] + [f"{label} ms" for label in labels]
    ratio = len(labels) == 2
    if ratio:
        head.append(f"{labels[1]} / {labels[0]}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios = []
    for row in rows:
        cells = [row["task"], _cell(row["eager_ms"])] + [_cell(row.get(label, "-")) for label in labels]
        if ratio:
            a, b = row.get(labels[0]), row.get(labels[1])
            if isinstance(a, float) and isinstance(b, float):
                ratios.append(b / a)
                cells.append(f"{b / a:.3f}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    if ratios:
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        worst = max(ratios)
        lines.append("")
        lines.append(f"{labels[1]} / {labels[0]} over {len(ratios)} tasks: geomean {geomean:.3f}, worst {worst:.3f}, "
                     f"{sum(r > 1.05 for r in ratios)} tasks more than 5 % slower")
    return "\n".join(lines)


def agreement(rows: list[dict], harness_rows: list[dict], label: str) -> str:
    """The harness's figure for each task against do_bench's, and whether they agree within 10 %."""
    by_task = {r["task"]: r for r in harness_rows}
    lines = ["| task | harness ms | do_bench ms | harness / do_bench | within 10 % |", "|---|---|---|---|---|"]
    agreed = total = launch_bound = 0
    for row in rows:
        ours, theirs = (by_task.get(row["task"]) or {}).get("ours_ms"), row.get(label)
        if not isinstance(ours, float) or not isinstance(theirs, float):
            continue
        ratio = ours / theirs
        total += 1
        agrees = abs(ratio - 1) <= 0.10
        agreed += agrees
        verdict = "yes" if agrees else "NO"
        launch_ms = ((by_task[row["task"]].get("launch_us") or 0) / 1000)
        if not agrees and theirs > ours and launch_ms >= 0.9 * ours:
            # do_bench launches back to back: a call whose launch outlasts its kernel is timed at the
            # host's pace there, while the harness times the device (and reports the launch beside it)
            verdict += f": launch-bound, {1000 * launch_ms:.0f} µs of host time per call"
            launch_bound += 1
        lines.append(f"| {row['task']} | {ours:.4f} | {theirs:.4f} | {ratio:.3f} | {verdict} |")
    lines += ["", f"{agreed} of {total} tasks agree within 10 %"
              + (f"; {launch_bound} of the others are launch-bound." if launch_bound else ".")]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(REPO / "bench" / "tasks"))
    parser.add_argument("--kernels", action="append", required=True, help="LABEL=DIR (repeatable)")
    parser.add_argument("--only", action="append", default=[], help="substring of task names (repeatable)")
    parser.add_argument("--harness", default=None,
                        help="run_suite --json output: compare its `ours_ms` with do_bench's (first --kernels label)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("do_bench_check needs a CUDA device", file=sys.stderr)
        return 2
    kernel_dirs = dict(item.split("=", 1) for item in args.kernels)
    labels = list(kernel_dirs)
    rows = []
    task_paths = sorted(Path(args.tasks).glob("*.py"))
    for task_path in task_paths:
        if args.only and not any(matches(task_path, pattern, task_paths) for pattern in args.only):
            continue
        kernels = {}
        # `{task}.py`, or the `{op}_generated.py` that `akg-op run` delivers (op: the task's file
        # name made an identifier, '26_GELU_.py' -> '26_gelu')
        names = (task_path.name, f"{task_path.stem}_generated.py", f"{op_name_from(task_path.name)}_generated.py")
        for label, folder in kernel_dirs.items():
            found = [Path(folder) / name for name in names if (Path(folder) / name).exists()]
            if found:
                kernels[label] = found[0]
        if not kernels:
            continue
        row = time_task(task_path, kernels)
        rows.append(row)
        print(json.dumps(row), flush=True)
    text = f"## do_bench check ({torch.cuda.get_device_name(0)})\n\n" + table(rows, labels) + "\n"
    if args.harness:
        text += "\n" + agreement(rows, json.loads(Path(args.harness).read_text()), labels[0]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
