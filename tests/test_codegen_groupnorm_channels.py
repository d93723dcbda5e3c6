"""Group norm's channels per group (C // G) follows the channel count the kernels are given.

A task is lowered at one channel count and the generated file is run, in the Triton interpreter,
on a model built with another count that is still a multiple of the groups (as the harness's CPU
shrink does): the group mean's divisor (C // G * H * W) and the weight/bias index must be read
from the inputs, not baked from the traced size.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen

TASKS = Path(__file__).resolve().parent.parent / "bench" / "tasks"
_ids = itertools.count()


def with_sizes(source: str, **sizes: int) -> str:
    for name, value in sizes.items():
        source, n = re.subn(rf"(?m)^{name} = \d+$", f"{name} = {value}", source)
        assert n == 1, name
    return source


def load(tmp_path, text: str, role: str):
    name = f"cg_gn_channels_{role}_{next(_ids)}"
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task,channels,side,lowered_at,run_at", [
    ("fused_conv2d_groupnorm_instancenorm", "OUT_CHANNELS", 8, 16, (32, 8)),
    # halved, the 6x6 input leaves the instance norm a 1x1 map it refuses: sizes doubled instead
    ("fused_conv2d_groupnorm_instancenorm", "OUT_CHANNELS", 6, 16, (32,)),
    ("norm_groupnorm", "CHANNELS", 8, 16, (32, 8)),
])
def test_group_norm_serves_another_channel_count(tmp_path, task, channels, side, lowered_at, run_at):
    source = with_sizes((TASKS / f"{task}.py").read_text(), BATCH=2, HEIGHT=side, WIDTH=side, GROUPS=8)
    res = codegen.lower(with_sizes(source, **{channels: lowered_at}))
    assert res.ok, res.reason
    for count in run_at:  # C // G: 4 and 1 where the trace saw 2
        ref_task = load(tmp_path, with_sizes(source, **{channels: count}), "task")
        cand = load(tmp_path, res.code, "cand")
        torch.manual_seed(0)
        ref = ref_task.Model(*ref_task.get_init_inputs()).eval()
        with torch.no_grad():  # an affine transform that differs per channel, so a wrong index shows
            for name, p in ref.named_parameters():
                if name.startswith("gn."):
                    p.copy_(torch.randn_like(p))
        new = cand.ModelNew(*ref_task.get_init_inputs()).eval()
        new.load_state_dict(ref.state_dict())
        x = ref_task.get_inputs()[0]
        with torch.no_grad():
            want, got = ref(x), new(x)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=lambda m: f"C={count}: {m}")
