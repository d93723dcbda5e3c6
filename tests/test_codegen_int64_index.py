"""Offsets into tensors of 2**31 elements or more are computed in 64 bits; smaller ones keep 32.

Triton passes Python ints under 2**31 as int32 and `tl.program_id` is int32, so `row * n_cols` or
`pid * BLOCK` wraps silently past 2**31 elements. The interpreter cannot hold such tensors, so the
generated file is run on meta tensors (nothing allocated) with its launches captured, and each
captured kernel is compiled to Triton IR for an sm_90 target (front end only: no GPU needed): at
2**31 elements the program id is widened and every tensor's addresses take 64-bit offsets; at
small sizes the same file's kernels use 32-bit offsets only (no slower).
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import codegen

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count()

CUMSUM = (ROOT / "bench" / "tasks_large" / "scan_cumsum.py").read_text()  # (32768, 65536): 2**31 elements
ARGMAX = """import torch
import torch.nn as nn

A = 8
B = 16
C = 32


class Model(nn.Module):
    def forward(self, x):
        return torch.argmax(x, dim=1)


def get_inputs():
    return [torch.randn(A, B, C)]


def get_init_inputs():
    return []
"""
MATMUL = ARGMAX.replace("torch.argmax(x, dim=1)", "torch.relu(torch.matmul(x, w))").replace(
    "def forward(self, x)", "def forward(self, x, w)").replace("[torch.randn(A, B, C)]", "[torch.randn(A, B), torch.randn(B, C)]")
CONV = ARGMAX.replace("torch.argmax(x, dim=1)", "self.conv(x)").replace(
    "    def forward", "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(4, 4, 3, groups=4)\n\n"
    "    def forward").replace("torch.randn(A, B, C)", "torch.randn(A, 4, B, C)")


def sized(source: str, **sizes: int) -> str:
    for name, value in sizes.items():
        source = re.sub(rf"(?m)^{name} = \d+$", f"{name} = {value}", source)
    return source


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _launches(code_path: str, task_path: str) -> list:
    """(kernel, args, kwargs) of each launch ModelNew makes on the task's inputs, as meta tensors."""
    import triton.runtime.jit as jit

    cand, task = _load(code_path, f"cand_{next(_ids)}"), _load(task_path, f"task_{next(_ids)}")
    captured = []
    jit.JITFunction.run = lambda self, *a, grid, warmup, **kw: captured.append((self, a, kw))
    with torch.device("meta"):
        model, inputs = cand.ModelNew(*task.get_init_inputs()), task.get_inputs()
    model(*inputs)
    return captured


def _triton_ir(kernel, args, kwargs) -> str:
    """The kernel's Triton IR for these arguments, as the JIT would specialise it (sm_90)."""
    import triton.runtime.jit as jit
    from triton._C.libtriton import ir
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend

    signature, constants = {}, {}
    for i, param in enumerate(kernel.params):
        value = args[i] if i < len(args) else kwargs[param.name]
        if param.is_constexpr:
            signature[param.name], constants[param.name] = "constexpr", value
        else:
            signature[param.name] = jit.mangle_type(value)
    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    options = backend.parse_options({})
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    module = ASTSource(kernel, signature, constants).make_ir(
        target, options, backend.get_codegen_implementation(options), backend.get_module_map(), context)
    return str(module)


def _describe(code_path: str, task_path: str) -> list[dict]:
    """Per launch: the kernel, its INT64_INDEX, whether the program id is widened, the element type
    of every address offset (`tt.addptr ptr, offset`), and how many tensors it is given."""
    out = []
    for kernel, args, kwargs in _launches(code_path, task_path):
        text = _triton_ir(kernel, args, kwargs)
        pid = re.search(r"(%\S+) = tt\.get_program_id x : i32", text)
        out.append({
            "kernel": kernel.__name__, "int64_index": kwargs.get("INT64_INDEX"),
            "pid_widened": bool(pid and re.search(rf"arith\.extsi {re.escape(pid.group(1))} : i32 to i64", text)),
            "offsets": re.findall(r"tt\.addptr .*?, tensor<[^>]*x(i\d+)>", text),
            "tensors": sum(isinstance(a, torch.Tensor) for a in list(args) + list(kwargs.values())),
        })
    return out


def launched(tmp_path, code: str, task_source: str) -> list[dict]:
    """_describe in a fresh process: the interpreter (other tests) patches triton.language for good,
    and the IR must come from the real compiler front end."""
    code_path, task_path = tmp_path / f"cand_{next(_ids)}.py", tmp_path / f"task_{next(_ids)}.py"
    code_path.write_text(code)
    task_path.write_text(task_source)
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, __file__, str(code_path), str(task_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found
    return found


def assert_64_bit(launch: dict):
    assert launch["int64_index"] is not False, launch
    if "matmul" not in launch["kernel"]:  # a matmul widens its tile offsets, not the tile id
        assert launch["pid_widened"], f"{launch['kernel']}: the program id stays 32-bit"
    assert launch["offsets"].count("i64") >= launch["tensors"], launch


def assert_32_bit(launch: dict):
    assert launch["int64_index"] is False and launch["offsets"] and set(launch["offsets"]) == {"i32"}, launch


def test_a_cumsum_traced_at_two_to_the_31_elements_indexes_in_64_bits(tmp_path):
    res = codegen.lower(CUMSUM)  # traced on fake tensors: nothing of 8 GB is allocated
    assert res.ok, res.reason
    for launch in launched(tmp_path, res.code, CUMSUM):
        assert launch["offsets"] and set(launch["offsets"]) == {"i64"}, launch


@pytest.mark.parametrize("task,small,large", [
    (CUMSUM, dict(BATCH=32, DIM=64), dict()),  # a row scan
    (ARGMAX, dict(), dict(A=4096, B=1024, C=1024)),  # a strided reduction with per-lane indices
    (CONV, dict(), dict(A=256, B=1024, C=2048)),  # the direct convolution
    (MATMUL, dict(A=64, B=32, C=48), dict(A=65536, B=64, C=65536)),  # the matmul template, its result 2**32
])
def test_a_file_traced_small_widens_its_offsets_at_two_to_the_31_elements(tmp_path, task, small, large):
    """The file serves any size: traced small, launched on 2**31 elements or more it compiles a
    64-bit variant (INT64_INDEX); at small sizes its kernels keep 32-bit offsets."""
    res = codegen.lower(sized(task, **small))
    assert res.ok, res.reason
    for launch in launched(tmp_path, res.code, sized(task, **large)):
        assert launch["int64_index"] is True, launch
        assert_64_bit(launch)
    for launch in launched(tmp_path, res.code, sized(task, **small)):
        assert_32_bit(launch)


if __name__ == "__main__":  # launched(): python tests/test_codegen_int64_index.py CODE.py TASK.py
    print(json.dumps(_describe(sys.argv[1], sys.argv[2])))
