"""A lone convolution without groups, or a transposed one in its stride phases, runs as an implicit
GEMM on tensor cores (codegen.conv_gemm).

The direct kernel multiplied on CUDA cores: a standard 2-D convolution of the public benchmark,
(16, 16, 1024, 1024) -> 128 channels, ran at 64.5 ms on an H200 against cuDNN's 6.7 (0.10x).
Correctness runs in the interpreter; the kernel is also compiled for a Hopper GPU here, at the
benchmark size, so that a file that would not compile there, or spill, fails on a CPU machine.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from bench import hopper_compile
from codegen.extern.loading import load_generated
from generators.base import GenContext
from generators.embedded import EmbeddedGenerator
from tests.test_codegen import load, make_task, run_both

LARGE = Path(__file__).resolve().parent.parent / "bench" / "tasks_large" / "conv2d_standard.py"


def _write(tmp_path, code):
    path = tmp_path / "generated.py"
    path.write_text(code)
    return path


@pytest.mark.parametrize("conv,inputs,tunables", [
    # strided, padded, dilated, with a bias; positions not a multiple of the tile's
    ("nn.Conv2d(12, 24, 3, stride=2, padding=2, dilation=2)", "[torch.randn(2, 12, 19, 23)]", None),
    # channels that leave partial tiles: 20 inputs in steps of 16, 20 outputs in a tile of 32
    ("nn.Conv2d(20, 20, (3, 5), padding=(1, 0), bias=False)", "[torch.randn(2, 20, 9, 11)]",
     {"conv_gemm.BLOCK_CO": 32, "conv_gemm.BLOCK_K": 16, "conv_gemm.BLOCK_P": 64}),
    ("nn.Conv1d(16, 32, 5, stride=3, padding=1)", "[torch.randn(3, 16, 70)]", None),
    ("nn.Conv3d(16, 8, 3, padding=1)", "[torch.randn(2, 16, 5, 6, 7)]", None),
    # fewer channels than a step: (tap, channel) pairs a step, 27 and 105 * 3 of them
    ("nn.Conv2d(3, 16, 3, stride=2, padding=1)", "[torch.randn(2, 3, 13, 12)]", None),
    ("nn.Conv3d(3, 8, (3, 5, 7), padding=(1, 2, 0))", "[torch.randn(2, 3, 5, 7, 9)]", None),
    ("nn.Conv1d(1, 4, 9, dilation=2)", "[torch.randn(2, 1, 40)]", None),
    # transposed, stride 1: the convolution with its kernel flipped; padding below, equal to and
    # past dilation * (kernel - 1) (a crop); output_padding (allowed below the dilation); 3 channels
    ("nn.ConvTranspose2d(16, 24, (3, 5), padding=(0, 1))", "[torch.randn(2, 16, 9, 11)]", None),
    ("nn.ConvTranspose2d(20, 8, 3, padding=3, bias=False)", "[torch.randn(2, 20, 10, 9)]", None),
    ("nn.ConvTranspose1d(16, 12, 5, dilation=3, padding=2, output_padding=2)", "[torch.randn(3, 16, 30)]", None),
    ("nn.ConvTranspose3d(3, 8, (3, 5, 7), padding=(1, 2, 3))", "[torch.randn(2, 3, 4, 6, 8)]", None),
    # transposed, strided: its stride phases are rows of the GEMM, those along the last dim stored
    # interleaved. Dilated 2 (of each pair of phases one gathers no tap: bias only), an odd output
    # width, groups of 16 channels, stride 3 along another dim with output_padding, a 1x1 kernel,
    # stride 1 along the last dim and 2 along another, stride 4, a 4x4 kernel of stride 2 (every
    # phase two taps a dim)
    ("nn.ConvTranspose3d(16, 32, 3, stride=2, padding=1, dilation=2)", "[torch.randn(2, 16, 3, 4, 5)]", None),
    ("nn.ConvTranspose1d(32, 16, 3, stride=2, padding=1, bias=False)", "[torch.randn(3, 32, 37)]", None),
    ("nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, groups=2)", "[torch.randn(2, 32, 5, 7)]", None),
    ("nn.ConvTranspose3d(32, 48, (2, 3, 3), stride=(1, 3, 2), padding=(0, 1, 2), output_padding=(0, 2, 1), groups=2)",
     "[torch.randn(2, 32, 3, 4, 5)]", None),
    ("nn.ConvTranspose2d(16, 16, 1, stride=2)", "[torch.randn(2, 16, 5, 6)]", None),
    ("nn.ConvTranspose2d(16, 24, 3, stride=(2, 1), padding=1)", "[torch.randn(2, 16, 5, 7)]", None),
    ("nn.ConvTranspose1d(16, 16, 4, stride=4, dilation=3)", "[torch.randn(2, 16, 9)]", None),
    ("nn.ConvTranspose2d(32, 48, 4, stride=2, padding=1)", "[torch.randn(2, 32, 6, 9)]",
     {"conv_gemm.BLOCK_CO": 64, "conv_gemm.BLOCK_P": 32}),
])
def test_a_standard_or_transposed_convolution_is_one_implicit_gemm(tmp_path, conv, inputs, tunables):
    source = make_task("self.conv(x)", inputs, init=f"|self.conv = {conv}")
    res = run_both(tmp_path, source, tunables=tunables)
    weight_kernel = ["phase_weight_kernel: the weight a stride phase"] if "Transpose" in conv else []
    assert res.kernels == [*weight_kernel, "channels_last_copy_kernel: channels moved last",
                           "conv_implicit_gemm_kernel: implicit GEMM convolution"]
    assert "conv_direct_kernel" not in res.code
    assert set(res.space) == {k for k in codegen.tunables.SPACE if k.startswith("conv_gemm.")}


@pytest.mark.parametrize("conv", [
    "nn.ConvTranspose2d(32, 64, 3, stride=5, padding=1, dilation=2)",  # stride 5 along the last dim
    "nn.ConvTranspose2d(32, 32, 3, stride=(2, 3), padding=1)",  # stride 3 along it
    "nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1)",  # 8 channels
    "nn.ConvTranspose2d(32, 64, 3, stride=2, groups=4)",  # 8 channels a group
])
def test_a_strided_transposed_convolution_the_gemm_does_not_serve_stays_direct(conv):
    """The phases along the last dim are interleaved in a tile of a power of 2 (a stride of 1, 2
    or 4); a gather a step over few channels ran slower than the direct kernel on an H200 (2-D,
    stride 2, 8 channels: 4.0 ms against 3.7)."""
    channels = int(conv.split("(")[1].split(",")[0])
    source = make_task("self.conv(x)", f"[torch.randn(2, {channels}, 6, 7)]", init=f"|self.conv = {conv}")
    res = codegen.lower(source)
    assert res.ok, res.reason
    assert res.kernels == ["conv_direct_kernel: direct transposed convolution"]


def test_a_strided_transposed_file_serves_fewer_channels_than_it_was_made_for(tmp_path):
    """Sizes are read at each call: the file made for 32 channels, a step of them at a time, is
    judged at 4, where a step takes (tap, channel) pairs from its block of rows' taps."""
    made = make_task("self.conv(x)", "[torch.randn(2, C, 5, 6)]", init="c|self.conv = nn.ConvTranspose2d(c, 16, 3, "
                     "stride=2, padding=1, output_padding=1)", init_args="[C]", consts="C = 32")
    res = codegen.lower(made)
    assert "conv_implicit_gemm_kernel" in res.code
    ns: dict = {}
    exec(made.replace("C = 32", "C = 4"), ns)
    torch.manual_seed(0)
    model = ns["Model"](4)
    new = load(_write(tmp_path, res.code), "fewer_channels").ModelNew(4)
    new.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 5, 6)
    torch.testing.assert_close(new(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul")  # the interpreter's, on the NaN
@pytest.mark.parametrize("conv,shape,channels", [
    ("nn.ConvTranspose3d(C, 32, 3, stride=2, padding=1, dilation=2)", "1, C, 3, 4, 5", 16),
    ("nn.ConvTranspose2d(C, 24, 4, stride=2, padding=1)", "2, C, 6, 7", 16),
    ("nn.ConvTranspose2d(C, 16, 3, stride=(2, 1), padding=1)", "2, C, 5, 6", 4),  # made for 16: pairs a step
])
def test_a_nan_or_inf_input_reaches_exactly_the_outputs_that_read_it(tmp_path, conv, shape, channels):
    """A row of a phase that does not gather a tap multiplies that tap's input by a zero weight:
    a NaN or an inf there made NaN of outputs that never read it (5184 more NaN than float64's
    1728 on public 77 at one NaN, one +inf and one -inf). Where the input holds one, its second
    launch computes each phase from the taps it gathers: the NaN and inf are float64's, no more."""
    made = make_task("self.conv(x)", f"[torch.randn({shape})]", init=f"c|self.conv = {conv.replace('C, ', 'c, ')}",
                     init_args="[C]", consts="C = 16")
    res = codegen.lower(made)
    assert "conv_implicit_gemm_kernel" in res.code
    ns: dict = {}
    exec(made.replace("C = 16", f"C = {channels}"), ns)
    torch.manual_seed(0)
    model = ns["Model"](channels)
    new = load(_write(tmp_path, res.code), "nonfinite").ModelNew(channels)
    new.load_state_dict(model.state_dict())
    x = ns["get_inputs"]()[0]
    x.view(-1)[[5, 40, 77]] = torch.tensor([float("nan"), float("inf"), float("-inf")])
    with torch.no_grad():
        got, exact = new(x), model.double()(x.double())
    assert exact.isnan().any() and exact.isinf().any()
    assert torch.equal(got.isnan(), exact.isnan())
    assert torch.equal(got.isinf(), exact.isinf()) and torch.equal(got[got.isinf()], exact[exact.isinf()].float())
    finite = exact.isfinite()
    torch.testing.assert_close(got[finite], exact[finite].float(), rtol=1e-4, atol=1e-4)
    clean = ns["get_inputs"]()[0]  # and with none, the one launch as before
    torch.testing.assert_close(new(clean), model.float()(clean), rtol=1e-5, atol=1e-5)


def test_a_block_of_rows_runs_only_the_taps_its_phases_gather(tmp_path):
    """Rows are (phase along D and H, output channel, phase along W); a block of them runs the taps
    any of its phases gathers, no others. Public 77 (3-D, stride 2, dilation 2, 64 channels): of
    the 8 phases only the odd one of each dim gathers (all 27 taps), so three of its four blocks
    of 128 rows run no step. Public 73 (stride 2, padding 1, 32 channels): a block of the even
    phase along D runs 4 of the 8 offsets."""
    source = make_task("self.conv(x)", "[torch.randn(1, 32, 3, 4, 5)]",
                       init="|self.conv = nn.ConvTranspose3d(32, 64, 3, stride=2, padding=1, dilation=2)")
    generated = load(_write(tmp_path, codegen.lower(source).code), "phase_plan")
    _, block_taps, per_dim = generated.phase_plan([2, 2, 2], [1, 1, 1], [2, 2, 2], [3, 3, 3], 64, 128, "cpu")
    assert per_dim == [(-1, 1, 3)] * 3  # offsets -1, 0, 1 a dim
    assert block_taps[:, 0].tolist() == [0, 0, 0, 27]
    _, block_taps, per_dim = generated.phase_plan([2, 2, 2], [1, 1, 1], [1, 1, 1], [3, 3, 3], 32, 128, "cpu")
    assert per_dim == [(0, 1, 2)] * 3
    assert block_taps[:, 0].tolist() == [4, 8]
    assert block_taps[0, 1:5].tolist() == [0, 1, 2, 3]  # offset 0 along D, both along H and W


def test_half_precision_inputs_multiply_on_the_tensor_cores_as_they_are(tmp_path):
    source = make_task("self.conv(x)", "[torch.randn(2, 16, 12, 12)]", init="|self.conv = nn.Conv2d(16, 32, 3).half()")
    res = run_both(tmp_path, source, dtype=torch.float16)
    assert "conv_implicit_gemm_kernel" in res.code


def test_the_copy_rounds_fp32_to_tf32_to_nearest_as_cudnn_does():
    """The tensor cores drop an fp32 operand's low 13 bits; rounded to nearest first, the GEMM's
    products are those of cuDNN's TF32 convolution (on an H200: bit for bit on public task 63)."""
    source = make_task("self.conv(x)", "[torch.randn(1, 16, 6, 6)]", init="|self.conv = nn.Conv2d(16, 16, 3)")
    copy = load_generated(codegen.lower(source).code, "conv_gemm_rounding")["channels_last_copy"]
    ulp = 2.0 ** -10  # TF32's last mantissa place at 1.0
    values = torch.cat([torch.tensor([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 4, 1 + 3 * ulp / 4, 0.0,
                                      float("inf"), -float("inf"), float("nan"), 3.4028235e38]),
                        torch.randn(503) * 100])
    got = copy(values.reshape(1, 8, 64), True).reshape(1, 64, 8).transpose(1, 2).flatten()
    mantissa, exponent = torch.frexp(values.double())  # 11 significant bits, ties away from zero
    want = torch.ldexp(torch.sign(mantissa) * torch.floor(mantissa.abs() * 2**11 + 0.5) / 2**11, exponent).float()
    torch.testing.assert_close(got, want, atol=0, rtol=0, equal_nan=True)
    assert got[0] == 1 + ulp and got[1] == -(1 + ulp) and got[8] == float("inf")  # ties away; past fp32's max
    assert torch.equal(copy(values.reshape(1, 8, 64), False).reshape(1, 64, 8).transpose(1, 2).flatten()
                       .nan_to_num(), values.nan_to_num())  # not asked: moved, unchanged


@pytest.mark.parametrize("nd,channels,allow_tf32,precision", [
    (2, 16, True, "tf32"),     # as cuDNN runs the reference
    (2, 3, True, "tf32"),      # so too with an image's 3 channels in 2-D
    (3, 3, True, "ieee"),      # but in 3-D cuDNN runs so few channels in exact fp32
    (3, 16, True, "tf32"),
    (2, 16, False, "tf32x3"),  # the reference's TF32 turned off: about fp32's accuracy
])
def test_fp32_multiplies_on_a_gpu_as_the_references_convolution(tmp_path, monkeypatch, nd, channels, allow_tf32,
                                                                 precision):
    shape = (2, channels) + (6,) * nd
    source = make_task("self.conv(x)", f"[torch.randn{shape}]", init=f"|self.conv = nn.Conv{nd}d({channels}, 32, 3)")
    generated = tmp_path / "generated.py"
    generated.write_text(codegen.lower(source).code)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    # meta tensors stand for a GPU's: the launches are recorded, not run
    calls = hopper_compile.launches(load(generated, "precision"), [], [torch.empty(shape, device="meta")])
    gemm = [kwargs for name, _, _, kwargs in calls if name == "conv_implicit_gemm_kernel"]
    copies = [kwargs["ROUND_TF32"] for name, _, _, kwargs in calls if name == "channels_last_copy_kernel"]
    assert [g["INPUT_PRECISION"] for g in gemm] == [precision]
    assert copies == [precision == "tf32"] * 2  # weight and input rounded only for TF32


def test_a_mismatch_in_tf32_is_fixed_at_fp32s_accuracy_first():
    """A reference that did not multiply in TF32 (a cuDNN heuristic, a task's own flag) rejects
    the TF32 file: the embedded generator's fix is the same file at about fp32's accuracy."""
    source = make_task("self.conv(x)", "[torch.randn(2, 16, 12, 12)]", init="|self.conv = nn.Conv2d(16, 32, 3)")
    generator, context = EmbeddedGenerator(), GenContext(op_name="conv2d", task_code=source)
    first = generator.generate(context)
    assert "CONV_GEMM_INPUT_PRECISION = 'tf32'\n" in first.code
    fixed = generator.fix(context, first.code, "[MISMATCH] 412/9600 elements outside tolerance", ["1: MISMATCH"])
    assert fixed.meta["tunables"] == first.meta["tunables"] | {"conv_gemm.INPUT_PRECISION": "tf32x3"}
    assert "CONV_GEMM_INPUT_PRECISION = 'tf32x3'\n" in fixed.code
    # another failure, or a mismatch at fp32's accuracy, moves one knob as before
    other = generator.fix(context, first.code, "[COMPILE ERROR] out of resources", ["1: COMPILE ERROR"])
    again = generator.fix(context, fixed.code, "[MISMATCH] 3/9600 elements outside tolerance", ["1", "2"])
    for proposal, seed in ((other, 1), (again, 2)):
        assert proposal.meta["tunables"] == codegen.neighbour(first.meta["space"], first.meta["tunables"], seed)


def test_the_switch_keeps_the_direct_kernel(tmp_path):
    source = make_task("self.conv(x)", "[torch.randn(2, 16, 10, 10)]", init="|self.conv = nn.Conv2d(16, 16, 3)")
    res = run_both(tmp_path, source, tunables={"conv_gemm.use": 0})
    assert res.kernels == ["conv_direct_kernel: direct convolution"]


@pytest.mark.skipif(not hopper_compile.available(), reason="Triton's CUDA backend (ptxas) is not installed")
def test_the_benchmark_size_kernel_compiles_for_hopper_on_tensor_cores_without_spilling(tmp_path):
    res = codegen.lower(LARGE.read_text())
    assert res.ok, res.reason
    generated = tmp_path / "conv2d_standard_generated.py"
    generated.write_text(res.code)
    kernels = hopper_compile.report_in_subprocess(LARGE, generated)["kernels"]
    assert [k["kernel"] for k in kernels] == ["channels_last_copy_kernel", "conv_implicit_gemm_kernel"]
    gemm = kernels[-1]
    assert all(k["ok"] and k["registers"] and k["spill_bytes"] == 0 for k in kernels), kernels
    assert gemm["tensor_cores"], kernels


@pytest.mark.skipif(not hopper_compile.available(), reason="Triton's CUDA backend (ptxas) is not installed")
def test_a_strided_transposed_kernel_compiles_for_hopper_on_tensor_cores_without_spilling(tmp_path):
    """Public task 77's convolution: 3-D, stride 2, dilation 2, 32 -> 64 channels over (16, 32, 16, 32, 32)."""
    task = tmp_path / "conv_transpose3d_strided.py"
    task.write_text(make_task("self.conv(x)", "[torch.randn(16, 32, 16, 32, 32)]",
                              init="|self.conv = nn.ConvTranspose3d(32, 64, 3, stride=2, padding=1, dilation=2)"))
    res = codegen.lower(task.read_text())
    assert res.ok, res.reason
    generated = _write(tmp_path, res.code)
    kernels = hopper_compile.report_in_subprocess(task, generated)["kernels"]
    # the implicit GEMM's second launch, of the phases one at a time where the input holds a NaN or an inf
    assert [k["kernel"] for k in kernels] == ["phase_weight_kernel", "channels_last_copy_kernel",
                                             "conv_implicit_gemm_kernel", "conv_implicit_gemm_kernel"]
    assert all(k["ok"] and k["registers"] and k["spill_bytes"] == 0 for k in kernels), kernels
    assert kernels[-1]["tensor_cores"], kernels
