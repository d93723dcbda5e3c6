"""docs/examples holds the embedded generator's output "as generated": it must be what the generator
writes today, or a reader studies code the product no longer makes."""
from pathlib import Path

import pytest

import codegen

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"layer_norm": "norm_layernorm", "rms_norm": "norm_rmsnorm", "softmax": "softmax_lastdim",
            "linear_gelu": "mm_linear_gelu_fp16", "conv2d_bias_relu_scale": "fused_conv2d_bias_relu_scale"}


@pytest.mark.parametrize("example,task", sorted(EXAMPLES.items()))
def test_each_example_is_what_the_generator_writes_today(example, task):
    lowering = codegen.lower((REPO / "bench" / "tasks" / f"{task}.py").read_text(), target="cuda")
    assert lowering.ok, lowering.reason
    assert (REPO / "docs" / "examples" / f"{example}.py").read_text() == lowering.code, (
        f"regenerate: python -m codegen bench/tasks/{task}.py -o docs/examples/{example}.py")
