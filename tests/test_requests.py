"""Parsing requests into KernelBench tasks, and the parameters/answers the gates accept."""
from __future__ import annotations

import pytest
import torch

from session_state import EnvInfo, Params, Pending
from nodes.answers import check_answer, interpret
from nodes.catalogue import OPS, parse_request, task_source
from nodes.errors import InvalidAnswer, UserError
from nodes.params import apply_edits, parse_edits, propose_params


def run_task(source: str):
    namespace: dict = {}
    exec(compile(source, "task.py", "exec"), namespace)
    model = namespace["Model"](*namespace["get_init_inputs"]())
    torch.manual_seed(0)
    inputs = namespace["get_inputs"]()
    return namespace, model(*inputs), inputs


@pytest.mark.parametrize("request_text, op, shapes, dtype", [
    ("Generate a relu kernel, input (128, 4096), fp32, on H100 with Triton", "relu", [(128, 4096)], "float32"),
    ("gelu 64x1024 bf16", "gelu", [(64, 1024)], "bfloat16"),
    ("log softmax over dim 0 of (32, 100)", "log_softmax", [(32, 100)], "float32"),
    ("fused layer norm [8, 16, 256] half", "layernorm", [(8, 16, 256)], "float16"),
    ("matmul (128, 64) and (64, 32) fp16", "matmul", [(128, 64), (64, 32)], "float16"),
    ("leaky relu (4, 4)", "leaky_relu", [(4, 4)], "float32"),
])
def test_requests_parse_into_op_shape_and_dtype(request_text, op, shapes, dtype):
    parsed = parse_request(request_text)
    assert (parsed.op, parsed.shapes, parsed.dtype) == (op, shapes, dtype)


def test_every_catalogue_op_renders_a_runnable_task():
    shapes = {"matmul": "(16, 8) and (8, 4)", "add": "(4, 8) and (1, 8)"}
    for op in OPS:
        parsed = parse_request(f"{op} {shapes.get(op, '(4, 8)')} fp32")
        namespace, out, inputs = run_task(task_source(parsed))
        assert isinstance(out, torch.Tensor) and torch.isfinite(out).all(), op
        assert "BATCH" in namespace or "M" in namespace or "D0" in namespace  # shrinkable sizes


def test_task_computes_what_was_asked():
    _, out, (x,) = run_task(task_source(parse_request("softmax (4, 16) dim=1")))
    torch.testing.assert_close(out, torch.softmax(x, dim=1))
    _, out, (x,) = run_task(task_source(parse_request("sum over dim 0 of (6, 5)")))
    torch.testing.assert_close(out, x.sum(dim=0))


def test_half_precision_norm_keeps_parameters_in_the_input_dtype():
    _, out, (x,) = run_task(task_source(parse_request("rmsnorm (4, 64) bf16")))
    assert x.dtype == out.dtype == torch.bfloat16


@pytest.mark.parametrize("request_text, message", [
    ("do something clever with (1, 2)", "no known operator"),
    ("relu please", "no input shape"),
    ("relu (128,,4)", "malformed shape"),
    ("relu (128, 0)", "malformed shape"),
    ("matmul (4, 5) and (6, 7)", "matching inner size"),
    ("softmax (4, 8) dim=3", "out of range"),
])
def test_unparseable_requests_say_what_was_understood(request_text, message):
    with pytest.raises(UserError, match=message) as info:
        parse_request(request_text)
    assert "\n" not in str(info.value)


def test_unknown_op_error_lists_understood_parts_and_known_ops():
    with pytest.raises(UserError) as info:
        parse_request("frobnicate (8, 8) bf16")
    text = str(info.value)
    assert "shape (8, 8)" in text and "bfloat16" in text and "relu" in text and "--task" in text


def test_parameters_follow_device_then_request_then_flags():
    gpu = EnvInfo(device_kind="cuda", device_name="NVIDIA H100 80GB HBM3", arch="h100")
    cpu = EnvInfo()
    assert propose_params(gpu, None, {}) == Params(backend="cuda", arch="h100", dsl="triton_cuda")
    assert propose_params(cpu, None, {}) == Params(backend="cpu", arch="cpu", dsl="triton_cuda")
    assert propose_params(cpu, "a100", {}).arch == "a100"
    assert propose_params(gpu, "a100", {"arch": "h200"}).arch == "h200"


def test_unsupported_combination_lists_supported_ones():
    with pytest.raises(UserError, match="supported: framework torch.*cuda: arch"):
        apply_edits(Params(), {"dsl": "cuda_c"})
    with pytest.raises(UserError, match="unknown parameter"):
        apply_edits(Params(), {"color": "red"})
    assert apply_edits(Params(), {"arch": "ascend910b4"}).dsl == "triton_ascend"
    assert parse_edits("arch=a100, dsl=triton_cuda") == {"arch": "a100", "dsl": "triton_cuda"}


def test_answers_are_checked_against_the_pending_gate():
    confirm = Pending(gate="confirm_params", question="?", options=["yes", "no"], default="yes")
    assert interpret(confirm, None)["decision"] == "yes"  # default
    assert interpret(confirm, "N")["decision"] == "no"
    assert interpret(confirm, "arch=a100", Params())["params"].arch == "a100"
    with pytest.raises(InvalidAnswer):
        check_answer(confirm, "maybe")
    with pytest.raises(InvalidAnswer):
        check_answer(confirm, "arch=nonsense", Params())
    choose = Pending(gate="choose_workflow", question="?", options=["kernelgen"], default="kernelgen")
    assert interpret(choose, "KernelGen")["decision"] == "kernelgen"
    with pytest.raises(InvalidAnswer, match="one of kernelgen"):
        check_answer(choose, "evolve")
