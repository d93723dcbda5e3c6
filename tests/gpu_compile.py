"""Compile a generated file's kernel for a Hopper GPU (sm_90) on a machine without one.

    python -m tests.gpu_compile TASK.py GENERATED.py KERNEL_NAME   (prints a JSON report)

The launcher runs on meta tensors (nothing is allocated, whatever the task's size), a recorder
stands in for the kernel and keeps its launch arguments, and Triton compiles the kernel for that
target with them, as the GPU's first call would: a kernel that does not compile there, or that
spills registers, shows here. Triton specialises integer arguments divisible by 16 and
pointers (aligned by torch's allocator); the same hints are given here.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import torch
import triton

POINTERS = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def nvidia_backend() -> bool:
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        return os.path.exists(get_ptxas(90).path)
    except Exception:  # no CUDA backend or no ptxas in this Triton
        return False


def launches(module, kernel_name: str, model_args: list, inputs: list) -> tuple:
    """(the jit function, [(args, kwargs) of each launch]) of ModelNew's forward on meta `inputs`."""
    calls = []
    kernel = getattr(module, kernel_name)

    class Recorder:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: calls.append((args, kwargs))

    setattr(module, kernel_name, Recorder())
    try:
        with torch.device("meta"):
            model = module.ModelNew(*model_args)
        model(*inputs)
    finally:
        setattr(module, kernel_name, kernel)
    return kernel, calls


def compile_for_hopper(fn, args: tuple, kwargs: dict):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    values = list(args) + [kwargs[name] for name in fn.arg_names[len(args):]]
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, value) in enumerate(zip(fn.arg_names, values)):
        if fn.params[i].is_constexpr:
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name], attrs[(i,)] = POINTERS[value.dtype], [["tt.divisibility", 16]]
        else:
            signature[name] = "i64" if abs(value) >= 2**31 else "i32"
            if value and value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": kwargs.get("num_warps", 4), "num_stages": kwargs.get("num_stages", 3)}
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)


def ptxas_report(compiled) -> str:
    """ptxas's resource report of the compiled kernel (registers, spill stores and loads)."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(compiled.asm["ptx"])
    try:
        done = subprocess.run([get_ptxas(90).path, "-arch=sm_90a", "-v", f.name, "-o", os.devnull],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(f.name)
    return done.stderr


def report(task_path: str, generated_path: str, kernel_name: str) -> dict:
    """Each launch's kernel compiled for sm_90: whether it uses the tensor cores, and ptxas's report."""
    def load(path, name):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    task, generated = load(task_path, "task"), load(generated_path, "generated")
    with torch.device("meta"):
        inputs = task.get_inputs()  # described at the task's size, never allocated
    kernel, calls = launches(generated, kernel_name, task.get_init_inputs(), inputs)
    out = []
    for args, kwargs in calls:
        compiled = compile_for_hopper(kernel, args, kwargs)
        out.append({"wgmma": "wgmma.mma_async" in compiled.asm["ptx"], "ptxas": ptxas_report(compiled)})
    return {"launches": out}


def report_in_subprocess(task_path, generated_path, kernel_name: str, timeout_s: float = 300) -> dict:
    """`report` in a process of its own without TRITON_INTERPRET (the interpreter, once active,
    patches triton.language for the whole process)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "tests.gpu_compile", str(task_path), str(generated_path), kernel_name],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(report(*sys.argv[1:4])))
