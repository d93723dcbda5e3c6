"""Generated files stay right off the traced path: NaN/inf propagate as in torch, and a ModelNew
serves every rank whose leading dims fold into one (norms, activations, linear layers) and raises
a clear ValueError for any other, never returning a wrong shape."""
from __future__ import annotations

import importlib.util
import itertools
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from tests.test_codegen import make_task

_ids = itertools.count()
NAN, INF = float("nan"), float("inf")
SPECIAL = torch.tensor([[NAN, 1.0, -2.0, INF, -INF, 0.0, 3.0, -0.5, 2.0],
                        [0.5, NAN, NAN, 2.0, -1.0, INF, -3.0, 1.0, -INF],
                        [1.0, -1.0, 4.0, -INF, 0.25, -0.25, INF, 2.0, NAN]])


def lowered(tmp_path, src, tunables=None):
    res = codegen.lower(src, tunables=tunables)
    assert res.ok, res.reason
    modules = []
    for role, text in (("task", src), ("cand", res.code)):
        path = tmp_path / f"{role}_{next(_ids)}.py"
        path.write_text(text)
        name = f"cg_generality_{role}_{next(_ids)}"
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    task, cand = modules
    torch.manual_seed(0)
    ref = task.Model(*task.get_init_inputs()).eval()
    new = cand.ModelNew(*task.get_init_inputs()).eval()
    new.load_state_dict(ref.state_dict())
    return ref, new


def assert_same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    if want.dtype.is_floating_point:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, equal_nan=True)
    else:
        assert torch.equal(got, want), (got, want)


POINTWISE = ["torch.relu(x)", "torch.clamp(x, -1.0, 1.0)", "F.hardtanh(x)", "F.relu6(x)", "F.hardsigmoid(x)",
             "torch.clamp_min(x, 0.5)", "torch.maximum(x, x.flip(1))", "torch.minimum(x, x.flip(1))",
             "F.leaky_relu(x, 0.2)", "torch.sigmoid(x) + torch.tanh(x)", "F.max_pool1d(x[None], 3)[0]"]
REDUCTIONS = ["torch.amax(x, dim=1)", "torch.amin(x, dim=1)", "torch.max(x, dim=1)[0]", "torch.argmax(x, dim=1)",
              "torch.argmin(x, dim=1)", "torch.softmax(x, dim=1)"]


@pytest.mark.parametrize("forward", POINTWISE)
def test_pointwise_nan_and_inf_as_torch(tmp_path, forward):
    ref, new = lowered(tmp_path, make_task(forward, "[torch.randn(3, 9)]"))
    with torch.no_grad():
        assert_same(new(SPECIAL.clone()), ref(SPECIAL.clone()))


@pytest.mark.parametrize("strategy", ["persistent", "looped"])
@pytest.mark.parametrize("forward", REDUCTIONS)
def test_reductions_nan_and_inf_as_torch(tmp_path, forward, strategy):
    ref, new = lowered(tmp_path, make_task(forward, "[torch.randn(3, 9)]"),
                       {"reduce.strategy": strategy, "reduce.BLOCK_N": 4, "reduce.split_programs": 0})
    with torch.no_grad():
        assert_same(new(SPECIAL.clone()), ref(SPECIAL.clone()))


def test_matmul_epilogue_keeps_nan(tmp_path):
    """relu / clamp in a linear layer's epilogue: a NaN row stays NaN, as in torch."""
    ref, new = lowered(tmp_path, make_task("torch.clamp(F.relu(self.lin(x)), max=1.0)", "[torch.randn(4, 16)]",
                                           init="|self.lin = nn.Linear(16, 8)"))
    x = torch.randn(4, 16)
    x[1, 3] = NAN
    with torch.no_grad():
        assert_same(new(x), ref(x))


LEADING = [
    ("torch.relu(x)", "[torch.randn(16, 64)]", "", "[]", [(3, 5, 64), (64,), (2, 2, 2, 8), ()]),
    ("self.norm(x)", "[torch.randn(8, 64)]", "dim|self.norm = nn.LayerNorm(dim)", "[64]", [(3, 7, 64), (64,)]),
    ("x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w", "[torch.randn(8, 64)]",
     "|self.w = nn.Parameter(torch.rand(64))", "[]", [(2, 3, 64), (64,)]),
    ("torch.softmax(x, dim=-1)", "[torch.randn(8, 64)]", "", "[]", [(3, 7, 64)]),
    ("F.gelu(self.lin(x))", "[torch.randn(8, 32)]", "|self.lin = nn.Linear(32, 16)", "[]", [(3, 7, 32), (32,)]),
]


@pytest.mark.parametrize("forward,inputs,init,init_args,shapes", LEADING, ids=[c[0][:24] for c in LEADING])
def test_any_leading_dims(tmp_path, forward, inputs, init, init_args, shapes):
    ref, new = lowered(tmp_path, make_task(forward, inputs, init=init, init_args=init_args))
    for shape in shapes:
        x = torch.randn(shape)
        with torch.no_grad():
            assert_same(new(x), ref(x))


@pytest.mark.parametrize("forward", ["torch.softmax(x, dim=1)", "x.sum(1)", "x - x.mean(0)"])
def test_other_ranks_raise_when_folding_would_change_the_result(tmp_path, forward):
    ref, new = lowered(tmp_path, make_task(forward, "[torch.randn(8, 64)]"))
    x = torch.randn(3, 7, 64)
    ref(x)  # the reference takes it ...
    with pytest.raises(ValueError, match="rank 2"):  # ... the kernels cannot serve it
        new(x)
    with torch.no_grad():
        x = torch.randn(5, 40)  # other sizes at the traced rank are served
        assert_same(new(x), ref(x))


def test_two_inputs_fold_together(tmp_path):
    ref, new = lowered(tmp_path, make_task("torch.where(x > y, x, y * 2)", "[torch.randn(4, 8), torch.randn(4, 8)]",
                                           sig="x, y"))
    x, y = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    with torch.no_grad():
        assert_same(new(x, y), ref(x, y))
    with pytest.raises(ValueError, match="leading dims"):
        new(x, torch.randn(3, 2, 8))


def test_tuple_outputs_unfold_each(tmp_path):
    ref, new = lowered(tmp_path, make_task("(torch.relu(x), self.norm(x))", "[torch.randn(4, 16)]",
                                           init="|self.norm = nn.LayerNorm(16)"))
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        got, want = new(x), ref(x)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want):
        assert_same(g, w)


def test_intermediate_buffers_of_one_op_stay_apart(tmp_path):
    """Two per-row sums feeding one kernel are named sum_2 and sum_3: renaming one must not rename the other."""
    ref, new = lowered(tmp_path, make_task("F.triplet_margin_loss(a, p, n)",
                                           "[torch.randn(6, 32), torch.randn(6, 32), torch.randn(6, 32)]", sig="a, p, n"))
    a, p, n = torch.randn(6, 32), torch.randn(6, 32), torch.randn(6, 32)
    with torch.no_grad():
        assert_same(new(a, p, n), ref(a, p, n))
