"""Side-by-side timing of extern-op tasks on a GPU: torch eager, torch.compile and the lowering.

    python -m codegen.extern.benchmark bench/tasks/mm_*.py bench/tasks/fused_*.py \
        [--compile-prefix fused_] [--json out.json] [--try 'mm.BLOCK_N=128,mm.num_stages=4']

Every task is checked against eager first (max abs error relative to the output's magnitude),
then timed with triton.testing.do_bench in this one process.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile
import time

import torch
import triton

from codegen.extern import lower_extern


def _load(source: str, name: str) -> dict:
    ns: dict = {"__name__": name}
    exec(compile(source, name, "exec"), ns)
    return ns


def load_generated(code: str, name: str = "generated"):
    """Import generated code from a real file: @triton.jit reads its kernels' source text."""
    folder = tempfile.mkdtemp(prefix="extern_gen_")
    path = os.path.join(folder, f"{name}.py")
    with open(path, "w") as f:
        f.write(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def _parse_tunables(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = value
    return out


def _flops(path, ns, inputs):
    """2*M*N*K for plain matmul tasks (for TFLOP/s), else None."""
    name = os.path.basename(path)
    if name.startswith("mm_square") or name.startswith("mm_transposed"):
        return 2 * ns["M"] * ns["N"] * ns["K"]
    return None


def bench_task(path, compile_it, tunables, device="cuda"):
    source = open(path).read()
    ns = _load(source, os.path.basename(path))
    low = lower_extern(source, tunables=tunables)
    row = {"task": os.path.basename(path), "ok": low.ok, "reason": low.reason,
           "tunables": low.tunables}
    if not low.ok:
        return row
    gen = load_generated(low.code, os.path.splitext(os.path.basename(path))[0] + "_generated")
    torch.manual_seed(0)
    model = ns["Model"](*ns["get_init_inputs"]()).to(device).eval()
    new = gen["ModelNew"](*ns["get_init_inputs"]()).to(device).eval()
    new.load_state_dict(model.state_dict())
    inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in ns["get_inputs"]()]
    with torch.no_grad():
        ref = model(*inputs)
        out = new(*inputs)
        scale = ref.float().abs().max().item()
        err = (ref.float() - out.float()).abs().max().item()
        row["rel_err"] = err / max(scale, 1e-6)
        row["correct"] = row["rel_err"] < (2e-2 if ref.dtype != torch.float32 else 1e-4)
        row["eager_ms"] = triton.testing.do_bench(lambda: model(*inputs))
        row["ours_ms"] = triton.testing.do_bench(lambda: new(*inputs))
        if compile_it:
            t0 = time.time()
            compiled = torch.compile(model)
            compiled(*inputs)
            row["compile_s"] = time.time() - t0
            row["compile_ms"] = triton.testing.do_bench(lambda: compiled(*inputs))
    flops = _flops(path, ns, inputs)
    if flops:
        row["ours_tflops"] = flops / row["ours_ms"] / 1e9
        row["eager_tflops"] = flops / row["eager_ms"] / 1e9
    row["vs_eager"] = row["eager_ms"] / row["ours_ms"]
    if "compile_ms" in row:
        row["vs_compile"] = row["compile_ms"] / row["ours_ms"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--compile-prefix", default="fused_",
                        help="torch.compile tasks whose file name starts with this ('' for all)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--try", dest="tries", action="append", default=[],
                        help="extra tunables to time on the first task, e.g. mm.BLOCK_N=128")
    parser.add_argument("--budget-s", type=float, default=1e9,
                        help="stop compiling with torch.compile after this many seconds")
    args = parser.parse_args(argv)
    start = time.time()
    rows = []
    for path in args.tasks:
        compile_it = (os.path.basename(path).startswith(args.compile_prefix)
                      and time.time() - start < args.budget_s)
        try:
            row = bench_task(path, compile_it, None)
        except Exception as e:  # report and go on: one broken task must not hide the rest
            row = {"task": os.path.basename(path), "ok": False, "reason": f"{type(e).__name__}: {e}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for text in args.tries:
        try:
            row = bench_task(args.tasks[0], False, _parse_tunables(text))
        except Exception as e:
            row = {"task": args.tasks[0], "ok": False, "reason": f"{type(e).__name__}: {e}"}
        row["try"] = text
        rows.append(row)
        print(json.dumps(row), flush=True)
    fused = [r for r in rows if r["task"].startswith("fused_") and r.get("vs_eager") and "try" not in r]
    if fused:
        geo = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs))
        print(f"fused geomean vs eager {geo([r['vs_eager'] for r in fused]):.2f}x", flush=True)
        withc = [r["vs_compile"] for r in fused if "vs_compile" in r]
        if withc:
            print(f"fused geomean vs torch.compile {geo(withc):.2f}x over {len(withc)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
