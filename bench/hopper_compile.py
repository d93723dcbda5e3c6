"""Compile the embedded generator's kernels for a Hopper GPU (sm_90) on a machine without one.

    python -m bench.hopper_compile --tasks bench/tasks_large [--only PATTERN] [--json FILE] [--out FILE.md]

For each task: lower it, run the generated ModelNew's forward on meta tensors at the task's own
size (nothing is allocated), with a recorder in place of every `@triton.jit` kernel, and compile
each recorded launch for sm_90 with Triton's CUDA backend, as the GPU's first call would (integer
arguments divisible by 16 and pointers carry the divisibility hints Triton would specialise on).
A kernel that would not compile on the GPU, or that spills registers, shows here; ptxas gives its
registers. It needs Triton's CUDA backend (bundled in the Linux wheels), not a GPU or CUDA. Each
task runs in a process of its own without TRITON_INTERPRET: the interpreter, once active, patches
triton.language for the whole process.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.selection import matches

REPO = Path(__file__).resolve().parents[1]
POINTERS = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float64: "*fp64",
            torch.int64: "*i64", torch.int32: "*i32", torch.int8: "*i8", torch.uint8: "*u8", torch.bool: "*i1"}


def available() -> bool:
    """Whether this Triton has the CUDA backend and its ptxas."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        return os.path.exists(get_ptxas(90).path)
    except Exception:  # no CUDA backend in this Triton
        return False


def _load(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launches(module, model_args: list, inputs: list) -> list[tuple]:
    """[(kernel name, jit function, args, kwargs)] of every launch ModelNew's forward makes on `inputs`."""
    from triton.runtime.jit import KernelInterface  # a jit function, or the interpreter's stand-in

    calls = []
    kernels = {name: v for name, v in vars(module).items() if isinstance(v, KernelInterface)}

    class Recorder:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **kwargs: calls.append((self.name, kernels[self.name], args, kwargs))

    for name in kernels:
        setattr(module, name, Recorder(name))
    try:
        with torch.device("meta"):
            model = module.ModelNew(*model_args)
        model(*inputs)
    finally:
        for name, kernel in kernels.items():
            setattr(module, name, kernel)
    return calls


def compile_for_hopper(fn, args: tuple, kwargs: dict):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    values = list(args) + [kwargs[name] for name in fn.arg_names[len(args):]]
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, value) in enumerate(zip(fn.arg_names, values)):
        if fn.params[i].is_constexpr:
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name], attrs[(i,)] = POINTERS[value.dtype], [["tt.divisibility", 16]]
        elif hasattr(value, "block_shape") and hasattr(value, "base"):  # a host TensorDescriptor (TMA)
            dtype = POINTERS[value.base.dtype].lstrip("*")
            signature[name] = f"tensordesc<{dtype}[{','.join(str(b) for b in value.block_shape)}]>"
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif value is None:
            signature[name], constexprs[name] = "constexpr", None
        else:
            signature[name] = "i64" if abs(int(value)) >= 2**31 else "i32"
            if value and int(value) % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": kwargs.get("num_warps", 4), "num_stages": kwargs.get("num_stages", 3)}
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


def ptxas_resources(compiled) -> dict:
    """Registers and spill stores (bytes) of the compiled kernel, as ptxas reports them."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(compiled.asm["ptx"])
    try:
        done = subprocess.run([get_ptxas(90).path, "-arch=sm_90a", "-v", f.name, "-o", os.devnull],
                              capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(f.name)
    registers = re.findall(r"Used (\d+) registers", done.stderr)
    spills = re.findall(r"(\d+) bytes spill stores", done.stderr)
    return {"registers": int(registers[-1]) if registers else None,
            "spill_bytes": sum(int(s) for s in spills) if spills else None}


def report(task_path, generated_path) -> dict:
    """Every launch of the generated file at the task's size, compiled for sm_90."""
    task, generated = _load(task_path, "task"), _load(generated_path, "generated")
    with torch.device("meta"):
        inputs = task.get_inputs()  # described at the task's size, never allocated
    try:
        calls = launches(generated, task.get_init_inputs(), inputs)
    except Exception as e:  # host code that reads values (a data-dependent size) cannot run on meta tensors
        return {"error": f"not traced on meta tensors: {type(e).__name__}: {str(e).splitlines()[0][:160]}", "kernels": []}
    kernels, seen = [], set()
    for name, fn, args, kwargs in calls:
        key = (name, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key in seen:  # the same specialisation launched again
            continue
        seen.add(key)
        row = {"kernel": name}
        try:
            compiled = compile_for_hopper(fn, args, kwargs)
            row.update(ok=True, tensor_cores="wgmma" in compiled.asm["ptx"] or "mma.sync" in compiled.asm["ptx"],
                       **ptxas_resources(compiled))
        except Exception as e:  # what the GPU's first call would raise
            row.update(ok=False, error=f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}")
        kernels.append(row)
    return {"kernels": kernels}


def report_in_subprocess(task_path, generated_path, timeout_s: float = 600) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "bench.hopper_compile", "--one", str(task_path), str(generated_path)],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=REPO)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300], "kernels": []}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| task | kernel | compiles | tensor cores | registers | spill bytes |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error") and not r["kernels"]:
            lines.append(f"| {r['task']} | - | {r['error']} | | | |")
        for k in r["kernels"]:
            lines.append(f"| {r['task']} | {k['kernel']} | {'yes' if k['ok'] else k['error']} | "
                         f"{'yes' if k.get('tensor_cores') else ''} | {k.get('registers') or ''} | "
                         f"{k.get('spill_bytes') if k.get('spill_bytes') is not None else ''} |")
    kernels = [k for r in rows for k in r["kernels"]]
    failed = sum(not k["ok"] for k in kernels)
    spilled = sum(bool(k.get("spill_bytes")) for k in kernels)
    untraced = sum(bool(r.get("error")) for r in rows)
    lines.append(f"\n{len(rows)} tasks, {len(kernels)} kernels: {failed} do not compile for sm_90, "
                 f"{spilled} spill registers; {untraced} tasks not traced.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hopper_compile", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=str(REPO / "bench" / "tasks_large"))
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=2, metavar=("TASK", "GENERATED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(report(*args.one)))
        return 0
    if not available():
        print("hopper_compile needs Triton's CUDA backend (ptxas); this Triton has none", file=sys.stderr)
        return 2
    import codegen

    rows = []
    paths = sorted(Path(args.tasks).glob("*.py"))
    with tempfile.TemporaryDirectory() as folder:
        for path in paths:
            if args.only and not any(matches(path, p, paths) for p in args.only):
                continue
            low = codegen.lower(path.read_text())
            if not low.ok:
                rows.append({"task": path.stem, "error": f"not lowered: {low.reason}", "kernels": []})
            else:
                generated = Path(folder) / f"{path.stem}_generated.py"
                generated.write_text(low.code)
                rows.append({"task": path.stem, **report_in_subprocess(path, generated)})
            print(json.dumps(rows[-1]), flush=True)
    text = table(rows)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.out:
        Path(args.out).write_text(f"`python -m bench.hopper_compile --tasks {args.tasks}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
