"""The embedded generator (codegen): lowering, numerics in the Triton interpreter, file hygiene.

Small shapes and a representative subset of families; the whole suite runs in bench/run_suite.py.
"""
from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen

_ids = itertools.count()


def make_task(forward: str, inputs: str, init: str = "", init_args: str = "[]", consts: str = "",
              sig: str = "x") -> str:
    return textwrap.dedent(f'''\
import torch
import torch.nn as nn
import torch.nn.functional as F
{consts}

class Model(nn.Module):
    def __init__(self{', ' + init.split('|')[0] if init else ''}):
        super().__init__()
        {init.split('|')[1] if init else 'pass'}

    def forward(self, {sig}):
        return {forward}


def get_inputs():
    return {inputs}


def get_init_inputs():
    return {init_args}
''')


def load(path, role):
    name = f"cg_test_{role}_{next(_ids)}"
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_both(tmp_path, source, tunables=None, dtype=None, tol=None, shrink=None):
    """Lower `source`, run Model and ModelNew on the same inputs, compare. `dtype` makes the task's
    float inputs (and parameters) that dtype; `shrink` edits the task source before running (sizes
    the lowering never saw)."""
    if dtype is not None:
        name = str(dtype).replace("torch.", "")
        source = source.replace("def get_inputs():\n    return ", "def get_inputs():\n    return _cast(") \
            .replace("\n\n\ndef get_init_inputs", ")\n\n\ndef get_init_inputs")
        source += (f"\n\ndef _cast(xs):\n    return [x.to(torch.{name}) if x.is_floating_point() else x for x in xs]\n")
    res = codegen.lower(source, tunables=tunables)
    assert res.ok, res.reason
    task_file = tmp_path / f"task_{next(_ids)}.py"
    task_file.write_text(shrink(source) if shrink else source)
    cand_file = tmp_path / f"cand_{next(_ids)}.py"
    cand_file.write_text(res.code)
    task, cand = load(task_file, "task"), load(cand_file, "cand")
    torch.manual_seed(0)
    ref = task.Model(*task.get_init_inputs()).eval()  # as the harness runs them
    new = cand.ModelNew(*task.get_init_inputs()).eval()
    new.load_state_dict(ref.state_dict())
    inputs = task.get_inputs()
    with torch.no_grad():
        want, got = ref(*inputs), new(*inputs)
    want = want if isinstance(want, (tuple, list)) else [want]
    got = got if isinstance(got, (tuple, list)) else [got]
    assert len(want) == len(got)
    tol = tol or {None: 1e-4, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    for w, g in zip(want, got):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        torch.testing.assert_close(g.float(), w.float(), atol=tol, rtol=tol, equal_nan=True)
    return res


DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_activation_chain_all_dtypes(tmp_path, dtype):
    src = make_task("F.mish(x) + torch.tanh(F.gelu(x, approximate='tanh')) * F.hardsigmoid(x) - F.selu(x)",
                    "[torch.randn(33, 65)]")
    res = run_both(tmp_path, src, dtype=dtype)
    assert len(res.kernels) == 1  # the whole chain is one pointwise kernel


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_middle_dim_all_dtypes(tmp_path, dtype):
    run_both(tmp_path, make_task("torch.softmax(x, dim=1)", "[torch.randn(3, 37, 5)]"), dtype=dtype)


def test_broadcast_scalars_and_clamp(tmp_path):
    src = make_task("torch.clamp((x + b) * s - 0.5, min=-1.0, max=2.0)", "[torch.randn(4, 8, 16), torch.randn(16), torch.tensor(1.5)]",
                    sig="x, b, s")
    run_both(tmp_path, src)


@pytest.mark.parametrize("strategy", ["persistent", "looped"])
def test_layernorm_persistent_and_looped(tmp_path, strategy):
    src = make_task("self.norm(x)", "[torch.randn(6, 300)]", init="dim|self.norm = nn.LayerNorm(dim)", init_args="[300]")
    res = run_both(tmp_path, src, tunables={"reduce.strategy": strategy, "reduce.BLOCK_N": 64})
    assert len(res.kernels) == 1  # statistics and normalisation in one row kernel


def test_groupnorm_bf16(tmp_path):
    src = make_task("self.gn(x)", "[torch.randn(2, 8, 5, 5)]", init="|self.gn = nn.GroupNorm(4, 8)")
    run_both(tmp_path, src, dtype=torch.bfloat16)


@pytest.mark.parametrize("strategy", ["persistent", "looped"])
def test_reductions_keepdim_and_arg(tmp_path, strategy):
    src = make_task("(torch.sum(x, dim=1, keepdim=True), torch.amax(x, dim=-1), torch.argmax(x, dim=1), torch.argmin(x, dim=2), "
                    "torch.prod(1 + 0.01 * x, dim=0))", "[torch.randn(3, 70, 9)]")
    run_both(tmp_path, src, tunables={"reduce.strategy": strategy, "reduce.BLOCK_N": 16})


@pytest.mark.parametrize("strategy", ["persistent", "looped"])
def test_scans_reverse_exclusive_masked(tmp_path, strategy):
    src = make_task("(torch.cumsum(x.flip(1), 1).flip(1), torch.cumprod(1 + 0.01 * x, dim=1), "
                    "torch.cumsum(torch.cat((torch.zeros_like(x[:, :1]), x), dim=1)[:, :-1], dim=1), torch.cumsum(x * m, dim=1))",
                    "[torch.randn(5, 100), torch.rand(5, 100) > 0.5]", sig="x, m")
    run_both(tmp_path, src, tunables={"reduce.strategy": strategy, "reduce.BLOCK_N": 32})


def test_losses(tmp_path):
    src = make_task("(F.cross_entropy(x, t), F.smooth_l1_loss(x, y), F.kl_div(torch.log_softmax(x, 1), torch.softmax(y, 1), reduction='batchmean'), "
                    "F.cosine_similarity(x, y).mean(), F.triplet_margin_loss(x, y, x.flip(0)))",
                    "[torch.randn(8, 12), torch.randn(8, 12), torch.randint(0, 12, (8,))]", sig="x, y, t")
    run_both(tmp_path, src)


def test_pooling(tmp_path):
    src = make_task("(F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 2, count_include_pad=False), "
                    "F.max_pool1d(x.flatten(2), 4, 3))", "[torch.randn(2, 3, 9, 10)]")
    run_both(tmp_path, src)


@pytest.mark.parametrize("forward", ["F.max_pool1d(x, 4, 2, 1, dilation=3)", "F.avg_pool2d(x.view(3, 4, 20, 100), 3, 2, 1)",
                                     # its output size is written two ways (`s + 0 + 1`, `1 + s`): was a flat
                                     # kernel dividing every index (0.48x torch.compile at benchmark size, H200)
                                     "F.avg_pool1d(x, 8, 1, 4)"])
def test_pools_take_tiles_of_their_own_size_with_no_division_an_element(tmp_path, forward):
    """A pool's output reads several inputs: its rows x columns tile has a budget of its own
    (POOL_BLOCK), and a 1-D pool (a 2-D window over an unsqueezed input, viewed back) is tiled too."""
    src = make_task(forward, "[torch.randn(3, 4, 2000)]")
    res = run_both(tmp_path, src)
    assert "tile_blocks(n_rows, n_cols, POOL_BLOCK)" in res.code and "POOL_BLOCK = 512" in res.code
    assert "offs //" not in res.code and "offs %" not in res.code
    small = run_both(tmp_path, src, tunables={"pointwise.pool_BLOCK": 128})
    assert "POOL_BLOCK = 128" in small.code and "pointwise.pool_BLOCK" in small.space
    assert not any(k.startswith("reduce.") for k in small.space)


@pytest.mark.parametrize("forward, one_element_a_thread", [
    ("F.avg_pool1d(x, 8, 1, 4)", True),               # public level-1 44's pool
    ("F.max_pool1d(x, 8, 1, 4, dilation=3)", True),   # 41's
    ("F.max_pool1d(x, 4, 2, 1, dilation=3)", False),  # stride 2: never more than one output a thread
    ("F.avg_pool1d(x, 3, 1, 1)", False),              # odd padding: no window starts on a vector
])
def test_a_1d_pool_loads_its_taps_from_the_input_itself(tmp_path, forward, one_element_a_thread):
    """A 1-D pool is traced as a 2-D one over an unsqueezed input. Its taps are loaded at offsets
    from the input, masked in the padding: no index clamped and no value selected per tap (2.52 ->
    1.43 ms for 44 on an H200, with the next point). Where a window may start on a vector boundary
    but its other taps do not, the loads are one element a thread (tl.max_contiguous): four
    consecutive outputs a thread made each unaligned tap four loads over four lines."""
    res = run_both(tmp_path, make_task(forward, "[torch.randn(3, 4, 2000)]"))
    assert not re.search(r"tl\.minimum\(tl\.maximum\(\w+, 0\)", res.code), "a clamped tap"
    assert ("tl.max_contiguous(" in res.code) == one_element_a_thread


NAN_SPECKLED = "torch.where(torch.rand({0}) < 0.01, float('nan'), torch.randn({0}))"


@pytest.mark.parametrize("forward, inputs, runs", [
    ("F.avg_pool2d(x, 11)", "[torch.randn(2, 3, 23, 370)]", 16),  # public level-1 45's pool
    ("F.max_pool2d(x, 11)", f"[{NAN_SPECKLED.format('2, 3, 23, 370')}]", 16),  # NaN as torch's
    ("F.max_pool2d(x, (3, 9), (2, 4), (1, 4))", "[torch.randn(2, 3, 9, 170)]", 16),  # runs overlap, padded
    ("F.avg_pool2d(x, (3, 8), (2, 5), (1, 3), count_include_pad=False)", "[torch.randn(2, 3, 9, 200)]", 8),
    ("F.avg_pool2d(x, 8, 8, divisor_override=3)", "[torch.randn(2, 3, 17, 300)]", 8),
    ("F.max_pool1d(x, 8, 4, 3)", "[torch.randn(2, 3, 500)]", 8),
    ("F.avg_pool3d(x, (2, 2, 8), (2, 2, 8), 1)", "[torch.randn(2, 3, 5, 6, 300)]", 8),
    ("F.avg_pool2d(x, 4, 4)", "[torch.randn(2, 3, 9, 150)]", 0),  # 4 taps: tap by tap
])
def test_a_wide_window_reads_its_last_dims_taps_as_one_vector(tmp_path, forward, inputs, runs):
    """A window of 8 taps or more moving 4 or more along the last dim loads each output's taps
    there as one vector (lanes past the window masked) into a tile one run wide, folded at the
    end: read tap by tap, each warp's load spans as many lines as the stride (45: 6.44 -> 5.12 ms
    on an H200). The launcher gives such a tile fewer outputs, as many values as before."""
    res = run_both(tmp_path, make_task(forward, inputs))
    assert (f"POOL_BLOCK // {runs})  # {runs} lanes an output" in res.code) == bool(runs)
    assert (f"tl.arange(0, {runs})[None, None, :]" in res.code) == bool(runs)
    if runs:
        off = run_both(tmp_path, make_task(forward, inputs), tunables={"pointwise.pool_runs": 0})
        assert "lanes an output" not in off.code and "[None, None, :]" not in off.code


def test_a_search_is_offered_only_knobs_that_change_the_file(tmp_path):
    """A move of a knob the file does not use proposes the same file again: no pool knobs without
    a pool, no row-kernel knobs without a reduction or scan."""
    relu = codegen.lower(make_task("torch.relu(x)", "[torch.randn(3, 4, 2000)]"))
    assert relu.ok and set(relu.space) == {"pointwise.BLOCK", "pointwise.num_warps", "num_stages"}
    for knob, values in relu.space.items():
        moved = codegen.lower(make_task("torch.relu(x)", "[torch.randn(3, 4, 2000)]"),
                              tunables={knob: next(v for v in values if v != relu.tunables[knob])})
        assert moved.code != relu.code, knob
    softmax = codegen.lower(make_task("torch.softmax(x, -1)", "[torch.randn(3, 4, 2000)]"))
    assert "reduce.BLOCK_N" in softmax.space and "pointwise.pool_BLOCK" not in softmax.space


def test_batchnorm_eval_and_batch_statistics(tmp_path):
    src = make_task("(self.bn(x), F.batch_norm(x, None, None, self.bn.weight, self.bn.bias, training=True))",
                    "[torch.randn(4, 3, 5, 5)]", init="|self.bn = nn.BatchNorm2d(3)")
    run_both(tmp_path, src)


def test_split_reductions_of_few_long_rows(tmp_path):
    """A whole-tensor reduction is shared by many programs (partials, then a combining kernel)."""
    src = make_task("(torch.mean((x - y) ** 2), x / torch.norm(x), x.var(), torch.amax(x, dim=1))",
                    "[torch.randn(3, 20000), torch.randn(3, 20000)]", sig="x, y")
    res = run_both(tmp_path, src)
    assert any("split" in k for k in res.kernels)


def test_sizes_not_seen_while_lowering(tmp_path):
    """The harness shrinks a task's constants on CPU: the file lowered at one size must run at another,
    including sizes the trace specialised (LayerNorm's normalized_shape)."""
    src = make_task("self.norm(x) + x.mean()", "[torch.randn(BATCH, DIM)]", init="dim|self.norm = nn.LayerNorm(dim)",
                    init_args="[DIM]", consts="BATCH = 16\nDIM = 96")
    run_both(tmp_path, src, shrink=lambda s: s.replace("BATCH = 16", "BATCH = 5").replace("DIM = 96", "DIM = 40"))


def test_unsupported_op_has_a_clear_reason():
    res = codegen.lower(make_task("torch.sort(x, dim=1)[0]", "[torch.randn(4, 8)]"))
    assert not res.ok and res.reason.startswith("unsupported:") and "sort" in res.reason


def test_file_is_self_contained_and_loads_state_dict(tmp_path):
    src = make_task("F.relu(self.norm(x) * self.scale)", "[torch.randn(4, 32)]",
                    init="dim|self.norm = nn.LayerNorm(dim); self.scale = nn.Parameter(torch.randn(dim))", init_args="[32]")
    res = run_both(tmp_path, src)
    tree = ast.parse(res.code)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"torch", "triton", "math"}
    assert "@triton.jit" in res.code and "class ModelNew(nn.Module)" in res.code
    assert "tl.constexpr" in res.code
    assert res.space and res.tunables["pointwise.BLOCK"] in res.space["pointwise.BLOCK"]


def test_tunables_neighbour_and_json_cli(tmp_path):
    space = codegen.tunables.space_of("pointwise")
    base = dict(codegen.DEFAULTS)
    moves = [codegen.neighbour(space, base, seed) for seed in range(6)]
    assert all(sum(m[k] != base[k] for k in base) == 1 for m in moves)
    task = tmp_path / "t.py"
    task.write_text(make_task("torch.relu(x)", "[torch.randn(4, 8)]"))
    out = subprocess.run([sys.executable, "-m", "codegen", str(task), "--json", "--tunables", '{"pointwise.BLOCK": 256}'],
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
    data = json.loads(out.stdout)
    assert data["ok"] and data["tunables"]["pointwise.BLOCK"] == 256 and "POINTWISE_BLOCK = 256" in data["code"]
    bad = codegen.lower_to_dict(task.read_text(), {"no.such": 1})
    assert not bad["ok"] and "no.such" in bad["reason"]


def _loads_of(code: str, name: str) -> int:
    """How many places of the generated file read tensor `name` (one per pass over it)."""
    return code.count(f"tl.load({name}_ptr + ")


def test_long_row_softmax_reads_x_twice(tmp_path):
    """Few long rows: an online split (running max and rescaled sum per chunk, one read of x) and
    one tiled kernel that combines the chunks' partials per row and writes the output (second
    read): two kernels, x read twice. Whole -inf chunks must not poison the row."""
    src = make_task("torch.softmax(x, dim=-1)",
                    "[torch.cat([torch.full((2, 4096), float('-inf')), 3 * torch.randn(2, 12288)], 1)]")
    res = run_both(tmp_path, src)
    assert len(res.kernels) == 2 and "split" in res.kernels[0] and "tiled" in res.kernels[1], res.kernels
    assert _loads_of(res.code, "x") == 2
    assert "tl.exp(-tl.abs(" in res.code  # the online update: one exp per element


def test_looped_softmax_is_online(tmp_path):
    """Rows too long for registers: max and sum of exponentials in one loop, the output in a second."""
    for forward in ("torch.softmax(x, dim=1)", "torch.log_softmax(x, dim=1)"):
        res = run_both(tmp_path, make_task(forward, "[torch.randn(5, 300)]"),
                       tunables={"reduce.strategy": "looped", "reduce.BLOCK_N": 64, "reduce.split_programs": 0})
        assert len(res.kernels) == 1
        assert res.code.count("for col_start in range") == 2  # the statistics, then the output
        assert _loads_of(res.code, "x") == 2


def test_a_looped_row_kernel_run_on_short_rows_holds_several_rows_per_program(tmp_path):
    """Planned at rows of 32768 (looped), run on rows of 100, as the CPU run of a benchmark-size task
    does: the column block is no wider than the row and holds several rows (37 rows: the last block
    partly masked), and softmax, the scan's carry and the variance stay right."""
    src = make_task("(torch.softmax(x, dim=1), torch.cumprod(1.0 + 0.01 * x, dim=1), x.var(dim=1))",
                    "[torch.randn(ROWS, COLS)]", consts="ROWS = 4\nCOLS = 32768")
    res = run_both(tmp_path, src, shrink=lambda s: s.replace("ROWS = 4", "ROWS = 37").replace("COLS = 32768", "COLS = 100"))
    assert any("looped" in k for k in res.kernels), res.kernels
    cand_file = tmp_path / "looped_short_rows.py"
    cand_file.write_text(res.code)
    block_m, block_n, _ = load(cand_file, "cand").row_blocks(37, 100, persistent=False)
    assert (block_m, block_n) == (16, 128)


def test_a_column_loop_of_welford_updates_gets_8_warps_and_other_loops_keep_4(tmp_path):
    """A looped variance (instance norm's statistics) launches its 2048-column steps with 8 warps,
    a looped softmax's online statistics with 4 (8 helped the first on an H100 and slowed the
    second class: BENCHMARKS.md, "Benchmark sizes"), and both stay right."""
    src = make_task("(x.var(dim=1), torch.softmax(x, dim=1))", "[torch.randn(ROWS, COLS)]",
                    consts="ROWS = 4\nCOLS = 5000")
    res = run_both(tmp_path, src, tunables={"reduce.strategy": "looped", "reduce.split_programs": 0})
    launches = [line for line in res.code.splitlines() if "= row_blocks(" in line]
    assert len(launches) == 2 and sum("welford=True" in line for line in launches) == 1, launches
    cand_file = tmp_path / "welford_warps.py"
    cand_file.write_text(res.code)
    row_blocks = load(cand_file, "cand").row_blocks
    assert row_blocks(4, 5000, persistent=False, welford=True)[2] == 8
    assert row_blocks(4, 5000, persistent=False)[2] == 4


def test_pointwise_and_tiled_kernels_take_wide_blocks_under_the_interpreter_only(tmp_path):
    """The interpreter runs programs one by one: a pointwise program or a rows x columns tile there
    holds 16 pointwise blocks, on the GPU one (many small programs stream best)."""
    res = run_both(tmp_path, make_task("torch.sigmoid(x) + 1.0", "[torch.randn(3, 40000)]"))
    assert "block = POINTWISE_BLOCK * (16 if INTERPRETED else 1)" in res.code and "BLOCK=block" in res.code
    src = make_task("torch.softmax(x, dim=-1)", "[3 * torch.randn(2, 16384)]")
    res = run_both(tmp_path, src)
    assert any("tiled" in k for k in res.kernels), res.kernels
    cand_file = tmp_path / "tiled.py"
    cand_file.write_text(res.code)
    cand = load(cand_file, "cand")
    block = cand.POINTWISE_BLOCK
    assert cand.INTERPRETED and cand.tile_blocks(1024, 196, block)[:2] == (16 * block // 256, 256)
    cand.INTERPRETED = False
    assert cand.tile_blocks(1024, 196, block)[:2] == (block // 256, 256)


def test_strided_looped_softmax_and_variance(tmp_path):
    """Reduced dim not innermost and looped: online max/sum of exponentials, Welford variance."""
    src = make_task("(torch.softmax(x, dim=1), x.var(dim=1))", "[2.0 + torch.randn(3, 100, 33)]")
    res = run_both(tmp_path, src, tunables={"reduce.strategy": "looped", "reduce.TILE": 256})
    assert all("looped" in k for k in res.kernels) and "strided=True" in res.code
    assert "tl.exp(-tl.abs(" in res.code and "w_m2" in res.code


def test_argmax_over_a_middle_dim_with_ties(tmp_path):
    """Reduced dim not innermost: a block of contiguous rows per program, per-lane best values in
    the loop (no cross-lane reduction per block), the first index of the maximum wins."""
    src = make_task("(torch.argmax(x, dim=1), torch.argmin(x, dim=1))", "[torch.randint(0, 3, (3, 100, 33)).float()]")
    res = run_both(tmp_path, src, tunables={"reduce.strategy": "looped", "reduce.TILE": 256})
    assert "strided=True" in res.code and "tl.argmax" not in res.code


def test_groupnorm_statistics_in_one_pass(tmp_path):
    """Few long groups: one split kernel computes count, mean and M2 (Welford) and the sum per chunk,
    the tiled normalisation combines them per row: x read twice, two kernels."""
    src = make_task("self.gn(x)", "[5.0 + torch.randn(1, 4, 64, 128)]", init="|self.gn = nn.GroupNorm(2, 4)")
    res = run_both(tmp_path, src)
    assert len(res.kernels) == 2 and "split" in res.kernels[0] and "tiled" in res.kernels[1], res.kernels
    assert _loads_of(res.code, "x") == 2


def test_statistics_of_one_tensor_over_the_same_rows_share_one_read(tmp_path):
    """conv -> group norm, plus instance norm of its ReLU: group norm's per-channel partials (few
    long groups) and instance norm's statistics are reductions of y and relu(y) over the same
    (n, c) rows, so one column loop accumulates both: the conv output is read twice in all (the
    statistics, then the normalisations), the conv bias loaded once a row."""
    init = ("|self.conv = nn.Conv2d(3, 8, 3); self.gn = nn.GroupNorm(2, 8); "
            "self.inorm = nn.InstanceNorm2d(8)")
    src = make_task("(lambda y: self.gn(y) + self.inorm(torch.relu(y)))(self.conv(x))",
                    "[torch.randn(1, 3, 132, 132)]", init=init)
    res = run_both(tmp_path, src, tunables={"reduce.split_programs": 8})
    stats = [k for k in res.kernels if "looped" in k]
    assert len(stats) == 1 and "wm2" in stats[0] and "var" in stats[0] and "relu" in stats[0], res.kernels
    assert _loads_of(res.code, "conv_out") == 2
    assert "conv_bias_ptr + row" in res.code  # per row in the statistics loop, not per element
    assert res.code.count("+ tl.where(mask, 1.0, 0.0)") == 1  # one count for both variances
    shifted = src.replace("[torch.randn(1, 3, 132, 132)]", "[50.0 + torch.randn(1, 3, 132, 132)]")
    run_both(tmp_path, shifted, tunables={"reduce.split_programs": 8})
    # the conv called twice: two vendor results, so two reads, each kernel after its own call
    twice = src.replace("(lambda y: self.gn(y) + self.inorm(torch.relu(y)))(self.conv(x))",
                        "self.gn(self.conv(x)) + self.inorm(torch.relu(self.conv(x)))")
    run_both(tmp_path, twice, tunables={"reduce.split_programs": 8})


def test_batchnorm_training_layout_split(tmp_path):
    """Batch statistics over (N, H, W): per-(n, c) partials over the contiguous H*W (one read), then
    the normalisation combines the N partials of its channel in place: two kernels."""
    src = make_task("F.batch_norm(x, None, None, self.w, self.b, training=True)", "[3.0 + torch.randn(4, 3, 32, 32)]",
                    init="|self.w = nn.Parameter(torch.rand(3)); self.b = nn.Parameter(torch.randn(3))")
    res = run_both(tmp_path, src, tunables={"reduce.split_programs": 16})
    assert len(res.kernels) == 2 and "tiled" in res.kernels[1], res.kernels
    assert _loads_of(res.code, "x") == 2


def test_the_delivered_file_carries_definitions_and_constants_never_statements(tmp_path):
    """Importing a generated kernel must not run the task's top-level statements."""
    import codegen
    task = '''
import torch
import torch.nn as nn

DIM = 64
SCALE = 2.0 * DIM
print("side effect at import")
torch.manual_seed(1234)
BUFFER = torch.randn(DIM)


def helper(x):
    return x * SCALE


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(helper(x))


def get_inputs():
    return [torch.randn(8, DIM)]


def get_init_inputs():
    return []
'''
    lowering = codegen.lower(task)
    assert lowering.ok, lowering.reason
    assert "DIM = 64" in lowering.code and "def helper" in lowering.code and "SCALE = 2.0 * DIM" in lowering.code
    assert "print(" not in lowering.code and "manual_seed(1234)" not in lowering.code and "BUFFER" not in lowering.code


def test_a_kernel_named_after_a_direct_aten_call_is_a_valid_identifier():
    """A task calling an ATen overload directly (torch.ops.aten.slice.Tensor, as fusion tasks do)."""
    import codegen
    task = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        half = torch.ops.aten.slice.Tensor(x, 1, 0, x.shape[1] // 2)
        return torch.neg(half) * 2.0


def get_inputs():
    return [torch.randn(8, 64)]


def get_init_inputs():
    return []
'''
    lowering = codegen.lower(task)
    assert lowering.ok, lowering.reason
    compile(lowering.code, "<generated>", "exec")


@pytest.mark.parametrize("forward,inputs,sig", [
    ("a @ b", "[torch.randn(40, 300), torch.randn(300, 1)]", "a, b"),
    ("torch.mv(a, b)", "[torch.randn(40, 300), torch.randn(300)]", "a, b"),
    ("torch.dot(a, b)", "[torch.randn(3000), torch.randn(3000)]", "a, b"),
    ("torch.bmm(a, b)", "[torch.randn(3, 20, 300), torch.randn(3, 300, 1)]", "a, b"),
    ("torch.relu(F.linear(a, w, c))", "[torch.randn(40, 300), torch.randn(1, 300), torch.randn(1)]", "a, w, c"),
    ("torch.addmm(c, a, b, beta=0.5, alpha=2.0)", "[torch.randn(40, 1), torch.randn(40, 300), torch.randn(300, 1)]",
     "c, a, b"),
    # one output row: a linear layer at batch 1 (the weight read along its rows), a row times a matrix
    ("F.silu(F.linear(a, w, c))", "[torch.randn(1, 300), torch.randn(70, 300), torch.randn(70)]", "a, w, c"),
    ("a @ b", "[torch.randn(1, 300), torch.randn(300, 70)]", "a, b"),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_a_product_with_one_output_column_or_row_is_a_row_sum(tmp_path, forward, inputs, sig, dtype):
    """A matrix times a vector reads the matrix once at two flops a value: a reduction, not a
    tensor-core matmul with a vector padded to 16 columns."""
    res = run_both(tmp_path, make_task(forward, inputs, sig=sig), dtype=dtype)
    assert "tl.dot" not in res.code and "tl.sum(" in res.code
    assert len(res.kernels) == 1  # the epilogue (bias, relu, the cast back) in the same kernel


def test_a_product_with_two_output_columns_and_rows_stays_a_matmul(tmp_path):
    res = run_both(tmp_path, make_task("a @ b", "[torch.randn(2, 64), torch.randn(64, 2)]", sig="a, b"))
    assert "tl.dot" in res.code


@pytest.mark.parametrize("forward,inputs,sig", [
    ("torch.relu(x) * s", "[torch.randn(1, 64), torch.randn(64)]", "x, s"),  # a batch of one
    ("F.gelu(F.linear(x, w))", "[torch.randn(1, 64), torch.randn(48, 64)]", "x, w"),  # a linear layer at batch 1
    ("x * y", "[torch.randn(8, 64), torch.randn(8, 1)]", "x, y"),  # a broadcast operand
])
def test_a_dim_traced_at_size_one_refuses_another_size_rather_than_reading_its_first_index(tmp_path, forward, inputs,
                                                                                         sig):
    """The kernels plan a size-1 dim as 1 (a batch of one reads row 0 only; a broadcast operand
    index 0): called with another size there, the file must say so, not return a wrong result."""
    res = run_both(tmp_path, make_task(forward, inputs, sig=sig))
    cand_file = tmp_path / "one.py"
    cand_file.write_text(res.code)
    new = load(cand_file, "cand").ModelNew()
    args = eval(inputs.replace("1, 64", "3, 64").replace("8, 1)", "8, 64)"))
    with pytest.raises(ValueError, match=r"generated for size 1 in dim (0|1) of (x|y)"):
        new(*args)
