"""Every word of a request that carries meaning is honoured or refused by name (issue 14, point 3)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nodes.catalogue import parse_request, task_source
from nodes.errors import UserError
from tests.test_cli import akg, assert_one_line_error
from tests.test_requests import run_task


def test_fused_bias_gelu_builds_the_composite():
    parsed = parse_request("fused bias + gelu, input (16, 64), fp32")
    assert parsed.op == "bias_gelu"
    _, out, (x, bias) = run_task(task_source(parsed))
    torch.testing.assert_close(out, F.gelu(x + bias))


def test_gelu_of_x_at_w_plus_b_builds_matmul_bias_gelu():
    parsed = parse_request("gelu(x @ W + b), x (16, 32), W (32, 8)")
    assert parsed.op == "matmul_bias_gelu" and "op matmul then bias then gelu" in parsed.understood
    _, out, (x, w, b) = run_task(task_source(parsed))
    torch.testing.assert_close(out, F.gelu(x @ w + b))


@pytest.mark.parametrize("text", ["relu then softmax (8, 32)", "softmax(relu(x)) (8, 32)"])
def test_relu_then_softmax_applies_both_in_order(text):
    _, out, (x,) = run_task(task_source(parse_request(text)))
    torch.testing.assert_close(out, torch.softmax(torch.relu(x), dim=-1))


def test_leaky_relu_slope_is_honoured():
    parsed = parse_request("leaky relu slope 0.2 (8, 32)")
    _, out, (x,) = run_task(task_source(parsed))
    torch.testing.assert_close(out, F.leaky_relu(x, negative_slope=0.2))
    assert "negative_slope 0.2" in parsed.understood


def test_gelu_tanh_approximation_is_honoured():
    _, out, (x,) = run_task(task_source(parse_request("GELU tanh approximation (8, 32)")))
    torch.testing.assert_close(out, F.gelu(x, approximate="tanh"))
    assert not torch.allclose(F.gelu(x, approximate="tanh"), F.gelu(x), atol=0, rtol=0)


@pytest.mark.parametrize("text, word", [
    ("relu (8, 32) int8", "int8"), ("relu (8, 32) float64", "float64"), ("fp8 matmul (8, 8) and (8, 8)", "fp8"),
    ("relu (8, 32) fp16 with fp32 accumulation", "float16, float32"),
    ("dropout then relu (8, 32)", "dropout"), ("relu backward (8, 32)", "backward"),
    ("relu slope 0.2 (8, 32)", "slope 0.2"), ("relu then layernorm (8, 32)", "relu then layernorm"),
])
def test_words_that_cannot_be_honoured_are_named(text, word):
    with pytest.raises(UserError, match=word.replace("(", r"\(")):
        parse_request(text)


def test_under_yes_nothing_silently_drops_a_dtype(tmp_path, cli_env):
    result = akg(["run", "relu (8, 32) int8", "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(result, "dtype 'int8' is not supported")
    assert not (tmp_path / "w").exists()


def test_composite_request_end_to_end(tmp_path, cli_env):
    result = akg(["run", "fused bias + gelu, input (16, 64), fp32", "--yes", "--workdir", str(tmp_path / "w"),
                  "--out", str(tmp_path / "o")], cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    task = next((tmp_path / "w").glob("op_bias_gelu_*/bias_gelu.py")).read_text()
    assert "x + bias" in task and "gelu(y)" in task
    assert (tmp_path / "o" / "bias_gelu_generated.py").exists()
