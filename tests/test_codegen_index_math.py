"""Index arithmetic the generator keeps off the per-element path (an integer division per element
by a run-time size made benchmark-size pools and losses 1.4-4x slower on an H100; see
bench/results/h100_large_speed_studies.md). Each case is also run against torch."""
from __future__ import annotations

import os
import re

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from tests.test_codegen import make_task


def _run(source: str, *inputs):
    res = codegen.lower(source)
    assert res.ok, res.reason
    ns: dict = {}
    exec(source, ns)
    gen: dict = {}
    exec(compile(res.code, "generated", "exec"), gen)
    torch.testing.assert_close(gen["ModelNew"]()(*inputs), ns["Model"]()(*inputs), rtol=1e-5, atol=1e-5)
    return res.code


def _divided(code: str, index: str) -> bool:
    return re.search(rf"\b{index}\b\s*(//|%)", code) is not None


def test_a_pool_decomposes_its_index_once_per_row_not_per_element():
    source = make_task("F.avg_pool3d(x, 3, 2, 1)", "[torch.randn(2, 3, 6, 9, 80)]")
    code = _run(source, torch.randn(2, 3, 6, 9, 80))
    assert _divided(code, "rows") and not _divided(code, "offs") and not _divided(code, "cols")


def test_a_loss_over_row_statistics_finds_each_rows_values_without_a_division():
    # enough rows to fill a GPU one program a row (fewer rows split each row into chunks instead)
    source = make_task("F.kl_div(torch.log_softmax(x, -1), t, reduction='batchmean')",
                       "[torch.randn(600, 1024), torch.randn(600, 1024).softmax(-1)]", sig="x, t")
    x, t = torch.randn(600, 1024), torch.randn(600, 1024).softmax(-1)
    code = _run(source, x, t)
    # each row reduced in one kernel (its statistics, then its terms), the rows summed after
    assert not _divided(code, "cols")


def _with_specials(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1)
    flat[3], flat[17], flat[-2] = float("nan"), float("-inf"), float("inf")
    return x


@pytest.mark.parametrize("forward,shape,pairs", [
    # rows x columns tiles (32 outputs a row or more): the stride-2 last dim reads pairs
    ("F.max_pool2d(x, 3, 2, 1)", (2, 3, 5, 66), True),       # a pair and a single tap a row
    ("F.max_pool2d(x, 3, 2, 1)", (1, 3, 6, 65), True),       # the last pair half outside the row
    ("F.avg_pool2d(x, 2, 2)", (1, 3, 4, 66), True),           # the pair is the whole window
    ("F.avg_pool2d(x, 4, 2, 1, ceil_mode=True)", (1, 2, 5, 67), True),  # a pair, two singles, past the end
    ("F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)", (1, 2, 5, 65), True),
    ("F.avg_pool2d(x, 3, 2, 1, divisor_override=5)", (1, 2, 5, 65), True),
    ("F.avg_pool3d(x, 3, 2, 1)", (1, 2, 3, 4, 66), True),
    ("F.max_pool2d(x, 3, 2, 1)", (1, 3, 5, 66, "half"), True),
    ("F.max_pool2d(x, 3, 3, 1, dilation=2)", (1, 2, 7, 100), False),  # no pair at stride 3
    # flat kernels (short rows): every tap a masked single load
    ("F.max_pool2d(x, 3, 2, 1)", (2, 3, 9, 10), False),
    ("F.avg_pool3d(x, 3, 2, 1)", (1, 2, 5, 6, 7), False),
])
def test_a_pool_over_an_input_loads_each_tap_masked_at_an_offset_from_its_window(forward, shape, pairs):
    # taps in the padding are masked loads, not clamped indices selected away afterwards; NaN and
    # infinities still propagate as torch's do
    dtype = shape[-1] if isinstance(shape[-1], str) else "float"
    shape = tuple(s for s in shape if isinstance(s, int))
    source = make_task(forward, f"[torch.randn{shape}.{dtype}()]")
    res = codegen.lower(source)
    assert res.ok, res.reason
    assert "tl.minimum(tl.maximum" not in res.code and "window" in res.code
    assert ("tl.split" in res.code) == pairs
    ns: dict = {}
    exec(source, ns)
    gen: dict = {}
    exec(compile(res.code, "generated", "exec"), gen)
    torch.manual_seed(0)
    x = _with_specials(getattr(torch.randn(*shape), dtype)())
    torch.testing.assert_close(gen["ModelNew"]()(x), ns["Model"]()(x), equal_nan=True)


SIZE_KERNEL = '''import triton
import triton.language as tl


@triton.jit
def size_kernel(out_ptr, s0, s1):
    tl.store(out_ptr, FLOOR_SAFE)
    tl.store(out_ptr + 1, PLAIN)
'''


def test_a_size_expression_floors_in_a_triton_kernel_as_in_python(tmp_path):
    """Triton's integer `//` truncates toward zero. A size whose numerator subtracts sizes is
    negative at valid sizes (public MobileNetV1's last feature map, 10 + (inner - k9 - ... - k12)
    // 2 with its kernel sizes read from the weights, came out 8 for 7, and a kernel stored past its
    output): the generated expression must floor there as Python does."""
    import importlib.util

    import sympy
    from torch.utils._sympy.functions import FloorDiv, PythonMod
    from torch.utils._sympy.printers import PythonPrinter

    from codegen.classify import _printer

    s0, s1 = sympy.symbols("s0 s1", positive=True, integer=True)
    size = 10 + FloorDiv(13 - s0 - s1 + FloorDiv(s0, 2), 2) + PythonMod(s1 - s0, 3)
    path = tmp_path / "size_kernel.py"
    path.write_text(SIZE_KERNEL.replace("FLOOR_SAFE", _printer().doprint(size))
                    .replace("PLAIN", PythonPrinter().doprint(size)))
    spec = importlib.util.spec_from_file_location("size_kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plain_wrong = 0
    for a, b in [(3, 3), (6, 3), (13, 1), (20, 7), (1, 9), (40, 3)]:
        out = torch.zeros(2, dtype=torch.int64)
        module.size_kernel[(1,)](out, a, b)
        assert int(out[0]) == int(size.subs({s0: a, s1: b})), (a, b)
        plain_wrong += int(out[1]) != int(out[0])
    assert plain_wrong, "the plain `//` and `%` should truncate in Triton at some of these sizes"
    assert _printer().doprint(FloorDiv(s0 - 3, 2) + 1) == "1 + (((-3) + s0) // 2)"  # a plain one stays plain
