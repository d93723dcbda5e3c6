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
import re
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


def load(tmp_path, text: str, role: str):
    name = f"cg_int64_{role}_{next(_ids)}"
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def launches(tmp_path, monkeypatch, code: str, task_source: str) -> list:
    """(kernel, args, kwargs) of each launch ModelNew makes on the task's inputs, as meta tensors."""
    import triton.runtime.jit as jit

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # real JIT functions, compiled below, never run
    cand, task = load(tmp_path, code, "cand"), load(tmp_path, task_source, "task")
    captured = []
    monkeypatch.setattr(jit.JITFunction, "run", lambda self, *a, grid, warmup, **kw: captured.append((self, a, kw)))
    with torch.device("meta"):
        model, inputs = cand.ModelNew(*task.get_init_inputs()), task.get_inputs()
    model(*inputs)
    assert captured
    return captured


def triton_ir(kernel, args, kwargs) -> str:
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


def offset_types(text: str) -> list[str]:
    """The element type of every address offset (`tt.addptr ptr, offset`): i32 or i64."""
    return re.findall(r"tt\.addptr .*?, tensor<[^>]*x(i\d+)>", text)


def assert_64_bit(kernel, args, kwargs):
    text = triton_ir(kernel, args, kwargs)
    if "matmul" not in kernel.__name__:  # a matmul widens its tile offsets, not the tile id
        pid = re.search(r"(%\S+) = tt\.get_program_id x : i32", text)
        assert pid and re.search(rf"arith\.extsi {re.escape(pid.group(1))} : i32 to i64", text), \
            f"{kernel.__name__}: the program id stays 32-bit"
    pointers = sum(1 for p in kernel.params if not p.is_constexpr and isinstance(
        args[kernel.params.index(p)] if kernel.params.index(p) < len(args) else None, torch.Tensor))
    assert offset_types(text).count("i64") >= pointers, (kernel.__name__, offset_types(text))


def assert_32_bit(kernel, args, kwargs):
    types = offset_types(triton_ir(kernel, args, kwargs))
    assert types and set(types) == {"i32"}, (kernel.__name__, types)


def test_a_cumsum_traced_at_two_to_the_31_elements_indexes_in_64_bits(tmp_path, monkeypatch):
    res = codegen.lower(CUMSUM)  # traced on fake tensors: nothing of 8 GB is allocated
    assert res.ok, res.reason
    for kernel, args, kwargs in launches(tmp_path, monkeypatch, res.code, CUMSUM):
        text = triton_ir(kernel, args, kwargs)
        assert offset_types(text) and set(offset_types(text)) == {"i64"}, offset_types(text)


@pytest.mark.parametrize("task,small,large", [
    (CUMSUM, dict(BATCH=32, DIM=64), dict()),  # a row scan
    (ARGMAX, dict(), dict(A=4096, B=1024, C=1024)),  # a strided reduction with per-lane indices
    (CONV, dict(), dict(A=256, B=1024, C=2048)),  # the direct convolution
    (MATMUL, dict(A=64, B=32, C=48), dict(A=65536, B=64, C=65536)),  # the matmul template, its result 2**32
])
def test_a_file_traced_small_widens_its_offsets_at_two_to_the_31_elements(tmp_path, monkeypatch, task, small, large):
    """The file serves any size: traced small, launched on 2**31 elements or more it compiles a
    64-bit variant (INT64_INDEX); at small sizes its kernels keep 32-bit offsets."""
    res = codegen.lower(sized(task, **small))
    assert res.ok, res.reason
    for kernel, args, kwargs in launches(tmp_path, monkeypatch, res.code, sized(task, **large)):
        assert kwargs.get("INT64_INDEX") is True, kernel.__name__
        assert_64_bit(kernel, args, kwargs)
    for kernel, args, kwargs in launches(tmp_path, monkeypatch, res.code, sized(task, **small)):
        assert kwargs.get("INT64_INDEX") is False, kernel.__name__
        assert_32_bit(kernel, args, kwargs)
