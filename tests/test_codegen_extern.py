"""codegen.extern: matmul / attention / convolution templates with fused epilogues.

Each test lowers a small KernelBench-style task, imports the generated file from disk (as the
harness does), loads the reference's state_dict into ModelNew and compares outputs, with Triton
in the CPU interpreter.
"""
from __future__ import annotations

import os
import re

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import codegen
from codegen.extern import has_extern, lower_extern
from codegen.extern.loading import load_generated

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="interpreter tests (TRITON_INTERPRET=1)")

TASKS = os.path.join(os.path.dirname(__file__), "..", "bench", "tasks")


def task(body: str, inputs: str, init: str = "[]", consts: str = "") -> str:
    return (f"import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n{consts}\n"
            f"class Model(nn.Module):\n{body}\n\n"
            f"def get_inputs():\n    return {inputs}\n\n"
            f"def get_init_inputs():\n    return {init}\n")


def shrink(source: str, cap: int) -> str:
    """Halve the task's module-level size constants until each is at most `cap`."""
    def sub(m):
        v = int(m.group(2))
        while v > cap:
            v //= 2
        return f"{m.group(1)}{v}"
    return re.sub(r"(?m)^([A-Z_][A-Z0-9_]* = )(\d+)$", sub, source)


def check(source: str, tunables=None, rtol=None, atol=None, expect_kernels=None):
    low = lower_extern(source, tunables=tunables)
    assert low.ok, low.reason
    assert "class ModelNew(nn.Module)" in low.code and "@triton.jit" in low.code
    gen = load_generated(low.code, "extern_generated")
    ns: dict = {}
    exec(source, ns)
    torch.manual_seed(0)
    model = ns["Model"](*ns["get_init_inputs"]())
    new = gen["ModelNew"](*ns["get_init_inputs"]())
    new.load_state_dict(model.state_dict())  # same parameter names and shapes
    torch.manual_seed(1)
    inputs = ns["get_inputs"]()
    with torch.no_grad():
        ref, out = model(*inputs), new(*inputs)
    refs = ref if isinstance(ref, tuple) else (ref,)
    outs = out if isinstance(out, tuple) else (out,)
    for r, o in zip(refs, outs):
        assert o.shape == r.shape and o.dtype == r.dtype
        tol = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 4e-2}[r.dtype]
        torch.testing.assert_close(o.float(), r.float(), rtol=rtol or tol,
                                   atol=(atol or tol) * max(1.0, r.float().abs().max().item()))
    if expect_kernels is not None:
        assert len(low.kernels) == expect_kernels, low.kernels
    return low


NO_INIT = "    def __init__(self):\n        super().__init__()\n"


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_mm_dtypes(dtype):
    src = task(NO_INIT + "    def forward(self, a, b):\n        return torch.matmul(a, b)\n",
               f"[torch.randn(70, 48, dtype=torch.{dtype}), torch.randn(48, 40, dtype=torch.{dtype})]")
    low = check(src, expect_kernels=1)
    assert any(k.startswith("mm.") for k in low.space)


@pytest.mark.parametrize("forward,inputs", [
    ("torch.bmm(a, b)", "[torch.randn(3, 33, 40), torch.randn(3, 40, 17)]"),
    ("torch.matmul(a, b)", "[torch.randn(64, 50), torch.randn(50)]"),                 # matvec
    ("torch.matmul(a.T, b.T)", "[torch.randn(40, 64), torch.randn(24, 40)]"),         # transposed
    ("torch.matmul(a, b)", "[torch.randn(2, 3, 20, 32), torch.randn(32, 24)]"),       # 4-D @ 2-D
    ("torch.matmul(a, b.transpose(-1, -2))", "[torch.randn(2, 16, 32), torch.randn(2, 24, 32)]"),
    ("torch.matmul(a, b)", "[torch.randn(2, 1, 16, 32), torch.randn(3, 32, 8)]"),     # broadcast
    ("torch.diag(a) @ b", "[torch.randn(48), torch.randn(48, 40)]"),
    ("b @ torch.diag(a)", "[torch.randn(40), torch.randn(48, 40)]"),
    ("torch.tril(torch.matmul(torch.tril(a), torch.tril(b)))",
     "[torch.randn(80, 80), torch.randn(80, 80)]"),
    ("torch.triu(torch.matmul(torch.triu(a), b), diagonal=1)",
     "[torch.randn(72, 72), torch.randn(72, 40)]"),
    ("torch.addmm(c, a, b, beta=0.5, alpha=2.0)",
     "[torch.randn(30, 20), torch.randn(20, 25), torch.randn(25)]"),
    # irregular K and N: operands copied to aligned, zero-padded ones (aligned_operands)
    ("torch.matmul(a, b)", "[torch.randn(70, 45), torch.randn(45, 83)]"),
    ("torch.matmul(a, b.T)", "[torch.randn(66, 45), torch.randn(83, 45)]"),
    ("torch.bmm(a, b)", "[torch.randn(2, 65, 45), torch.randn(2, 45, 70)]"),
    ("torch.matmul(a, b)", "[torch.randn(2, 1, 64, 45), torch.randn(3, 45, 70)]"),    # broadcast batch
    ("torch.tril(torch.matmul(torch.tril(a), b))", "[torch.randn(70, 70), torch.randn(70, 83)]"),
])
def test_matmul_family(forward, inputs):
    names = "a, b, c" if inputs.count("torch.randn(") == 3 else "a, b"
    src = task(NO_INIT + f"    def forward(self, {names}):\n        return {forward}\n", inputs)
    check(src)


def test_tril_skips_zero_tiles_and_k_ranges():
    src = task(NO_INIT + "    def forward(self, a, b):\n"
               "        return torch.tril(torch.matmul(torch.tril(a), torch.tril(b)))\n",
               "[torch.randn(96, 96), torch.randn(96, 96)]")
    low = check(src, tunables={"mm.BLOCK_M": 32, "mm.BLOCK_N": 32, "mm.BLOCK_K": 32})
    assert "k_start" in low.code and "tl.where(pid_n * BLOCK_N" in low.code


def test_linear_epilogue_chain_fuses_into_one_kernel():
    body = ("    def __init__(self, n_in, n_out):\n        super().__init__()\n"
            "        self.fc = nn.Linear(n_in, n_out)\n"
            "        self.shift = nn.Parameter(torch.randn(n_out))\n"
            "    def forward(self, x, res):\n"
            "        y = F.gelu(self.fc(x) + self.shift)\n"
            "        return torch.sigmoid(y * 0.5 + res) - F.relu(y)\n")
    src = task(body, "[torch.randn(2, 20, 48), torch.randn(2, 20, 40)]", "[48, 40]")
    low = check(src, expect_kernels=1)
    assert "self.fc.weight" in low.code and "fc_weight.t()" in low.code


def test_linear_fp16_tanh_gelu_and_clamp():
    body = ("    def __init__(self):\n        super().__init__()\n"
            "        self.fc = nn.Linear(64, 64, dtype=torch.float16)\n"
            "    def forward(self, x):\n"
            "        y = F.gelu(self.fc(x), approximate='tanh')\n"
            "        return torch.clamp(F.silu(y) * 2.0 + x, -1.0, 1.0)\n")
    check(shrink(task(body, "[torch.randn(64, 64, dtype=torch.float16)]"), 64), expect_kernels=1)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype,head_dim", [("float16", 64), ("float32", 64), ("bfloat16", 128)])
def test_attention(causal, dtype, head_dim):
    src = task(NO_INIT + "    def forward(self, q, k, v):\n"
               "        return F.scaled_dot_product_attention(q, k, v, "
               f"is_causal={causal})\n",
               f"[torch.randn(1, 2, 40, {head_dim}, dtype=torch.{dtype}) for _ in range(3)]")
    check(src, tunables={"attn.BLOCK_M": 64, "attn.BLOCK_N": 32}, expect_kernels=1)


def test_causal_attention_whole_key_blocks_skip_masks_below_the_diagonal():
    # 128 keys in blocks of 32: EVEN_N, so blocks left of each query block's diagonal band run
    # unmasked and only the band is masked; the result must still match SDPA.
    src = task(NO_INIT + "    def forward(self, q, k, v):\n"
               "        return F.scaled_dot_product_attention(q, k, v, is_causal=True)\n",
               "[torch.randn(1, 2, 128, 32, dtype=torch.float16) for _ in range(3)]")
    low = check(src, tunables={"attn.BLOCK_M": 64, "attn.BLOCK_N": 32}, expect_kernels=1)
    assert "CAUSAL_MASK=False" in low.code and "CAUSAL_MASK=True" in low.code


TMA_ATTENTION = NO_INIT + ("    def forward(self, q, k, v):\n"
                           "        return F.scaled_dot_product_attention(q, k, v, is_causal={causal})\n")


@pytest.mark.parametrize("causal", [False, True])
def test_attention_reads_whole_key_blocks_through_tensor_descriptors(causal):
    # head_dim 128 in half: the defaults ask for TMA with 128-key blocks; 256 keys are two whole
    # blocks, so the launcher builds descriptors (the interpreter emulates them) and the result
    # must still match SDPA, the causal band included.
    src = task(TMA_ATTENTION.format(causal=causal),
               "[torch.randn(1, 2, 192, 128, dtype=torch.float16),"
               " torch.randn(1, 2, 256, 128, dtype=torch.float16),"
               " torch.randn(1, 2, 256, 128, dtype=torch.float16)]")
    low = check(src, expect_kernels=1)
    assert "BLOCK_N=128" in low.code and "TMA=1" in low.code
    gen = load_generated(low.code, "extern_generated")
    k, v = torch.randn(1, 2, 256, 128, dtype=torch.float16), torch.randn(1, 2, 256, 128, dtype=torch.float16)
    k_src, v_src, tma = gen["key_value_sources"](k, v, 128, 1)
    assert tma and type(k_src).__name__ == "TensorDescriptor"


def test_attention_falls_back_to_strided_loads_where_descriptors_would_read_wrong_rows():
    # 200 keys (not whole 128-key blocks: a descriptor over all heads' rows would read the next
    # head's keys) and keys given transposed (not contiguous): both read through pointers.
    src = task(NO_INIT + "    def forward(self, q, k, v):\n"
               "        return F.scaled_dot_product_attention(q, k.transpose(1, 2), v)\n",
               "[torch.randn(1, 2, 64, 128, dtype=torch.float16),"
               " torch.randn(1, 200, 2, 128, dtype=torch.float16),"
               " torch.randn(1, 2, 200, 128, dtype=torch.float16)]")
    low = check(src, expect_kernels=1)
    gen = load_generated(low.code, "extern_generated")
    sources = gen["key_value_sources"]
    k = torch.randn(1, 2, 256, 128, dtype=torch.float16)
    k200 = torch.randn(1, 2, 200, 128, dtype=torch.float16)
    assert sources(k, k, 128, 1)[2] and not sources(k200, k200, 128, 1)[2]
    assert not sources(k.transpose(2, 3).contiguous().transpose(2, 3), k, 128, 1)[2]
    assert not sources(k, k, 128, 0)[2]  # the config said no


def test_attention_scale_3d_and_epilogue():
    src = task(NO_INIT + "    def forward(self, q, k, v, r):\n"
               "        o = F.scaled_dot_product_attention(q, k, v, scale=0.3)\n"
               "        return torch.tanh(o) + r\n",
               "[torch.randn(2, 24, 32), torch.randn(2, 40, 32), torch.randn(2, 40, 32),"
               " torch.randn(2, 24, 32)]")
    check(src, expect_kernels=1)


def test_conv2d_epilogue_in_one_kernel():
    body = ("    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3, padding=1)\n"
            "        self.bias = nn.Parameter(torch.randn(8, 1, 1))\n"
            "    def forward(self, x):\n"
            "        return torch.relu(self.conv(x) + self.bias) * 2.0\n")
    low = check(task(body, "[torch.randn(2, 3, 12, 10)]"), expect_kernels=1)
    assert "F.conv2d(" in low.code and "None" in low.code  # conv bias moved into the epilogue


CONV_RESIDUAL = ("    def __init__(self):\n        super().__init__()\n"
                 "        self.conv = nn.Conv2d(3, 37, 3)\n"
                 "        self.scale = nn.Parameter(torch.randn(37, 1, 1))\n"
                 "    def forward(self, x, res):\n"
                 "        return torch.tanh(self.conv(x) * self.scale) + res\n")


def _run_generated(low, source):
    gen = load_generated(low.code, "extern_generated")
    ns: dict = {}
    exec(source, ns)
    model = ns["Model"](*ns["get_init_inputs"]())
    new = gen["ModelNew"](*ns["get_init_inputs"]())
    new.load_state_dict(model.state_dict())
    with torch.no_grad():
        return new(*ns["get_inputs"]())


def test_conv2d_runs_channels_last_and_returns_nchw():
    # 37 channels and 13x11 pixels: partial channel and pixel tiles; a per-channel parameter and
    # a same-shape residual in the epilogue. The output must come back in the reference's layout.
    src = task(CONV_RESIDUAL, "[torch.randn(2, 3, 15, 13), torch.randn(2, 37, 13, 11)]")
    low = check(src, tunables={"conv.BLOCK_C": 16, "conv.BLOCK_HW": 32}, expect_kernels=1)
    assert "to_channels_last(x," in low.code and "nchw_to_nhwc_kernel" in low.code
    assert _run_generated(low, src).is_contiguous()


def test_conv2d_layout_falls_back_to_nchw_when_asked_or_when_an_input_varies_along_pixels():
    src = task(CONV_RESIDUAL, "[torch.randn(2, 3, 15, 13), torch.randn(2, 37, 13, 11)]")
    low = check(src, tunables={"conv.channels_last": 0}, expect_kernels=1)
    assert "channels_last" not in low.code
    per_row = task(CONV_RESIDUAL.replace("(37, 1, 1)", "(1, 13, 1)"),
                   "[torch.randn(2, 3, 15, 13), torch.randn(2, 37, 13, 11)]")
    low = check(per_row, expect_kernels=1)  # the tile cannot index rows apart: flat NCHW kernel
    assert "channels_last" not in low.code


def test_conv1d_without_bias_and_plain_conv():
    body = ("    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv1d(4, 6, 3, stride=2, bias=False)\n"
            "    def forward(self, x):\n"
            "        return F.hardswish(self.conv(x)) - 0.25\n")
    check(task(body, "[torch.randn(2, 4, 33)]"), expect_kernels=1)


def test_a_number_made_a_tensor_in_forward_is_a_literal_of_the_conv_epilogue():
    # torch.min(conv, torch.tensor(0.5)) (public fused tasks): the constant, and ops on constants
    # alone, fold to numbers; torch.min of two tensors is minimum. Before, the extern lowering
    # refused the graph ("get_attr _tensor_constant0") and the convolution ran NCHW (0.69x
    # torch.compile at benchmark size on an H200; channels-last 0.99x).
    body = ("    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3)\n"
            "        self.bias = nn.Parameter(torch.randn(8, 1, 1))\n"
            "    def forward(self, x):\n"
            "        x = torch.min(self.conv(x), torch.tensor(0.5))\n"
            "        x = torch.max(x, torch.tensor(2, dtype=torch.int64) * -0.75)\n"
            "        return (x + self.bias) * 2.0\n")
    low = check(task(body, "[torch.randn(2, 3, 12, 10)]"), expect_kernels=1)
    assert "to_channels_last(x," in low.code
    assert "tl.minimum(" in low.code and "0.5" in low.code and "-1.5" in low.code


def test_a_plain_transposed_conv2d_runs_channels_last_and_a_grouped_dilated_one_nchw():
    # cuDNN: (128, 64, 64, 64) stride 2 transposed, channels-last 0.70 ms vs NCHW 1.32 (H200);
    # grouped and dilated, channels-last made the whole task slower (65.9 vs 50.4 ms)
    plain = ("    def __init__(self):\n        super().__init__()\n"
             "        self.conv = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1)\n"
             "    def forward(self, x):\n"
             "        return F.gelu(torch.min(self.conv(x) + 0.5, torch.tensor(0.0))) * 2.0\n")
    low = check(task(plain, "[torch.randn(2, 6, 7, 9)]"), expect_kernels=1)
    assert "F.conv_transpose2d(to_channels_last(x," in low.code
    grouped = plain.replace("padding=1)", "padding=1, groups=2, dilation=2)")
    src = task(grouped, "[torch.randn(2, 6, 7, 9)]")
    refused = lower_extern(src)
    assert not refused.ok and "grouped or dilated conv_transpose2d" in refused.reason
    whole = codegen.lower(src)  # the core schedule's NCHW cuDNN call and tiled epilogue
    assert whole.ok and "aten.convolution.default" in whole.code and "channels_last" not in whole.code
    ns: dict = {}
    exec(src, ns)
    gen = load_generated(whole.code, "hybrid_generated")
    model = ns["Model"]()
    new = gen["ModelNew"]()
    new.load_state_dict(model.state_dict())
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), rtol=1e-4, atol=1e-4)


def test_unsupported_is_reported_not_fallen_back():
    src = task(NO_INIT + "    def forward(self, a, b):\n"
               "        return torch.matmul(a, b).sum(dim=1)\n",
               "[torch.randn(8, 8), torch.randn(8, 8)]")
    low = lower_extern(src)
    assert not low.ok and low.reason.startswith("unsupported:")
    assert not lower_extern(src, tunables={"mm.NOPE": 1}).ok


def test_has_extern():
    from codegen.capture import load_task, trace_templates
    src = task(NO_INIT + "    def forward(self, a, b):\n        return a @ b\n",
               "[torch.randn(4, 4), torch.randn(4, 4)]")
    assert has_extern(trace_templates(load_task(src)).fx)
    relu = task(NO_INIT + "    def forward(self, a):\n        return torch.relu(a)\n", "[torch.randn(4, 4)]")
    assert not has_extern(trace_templates(load_task(relu)).fx)


@pytest.mark.parametrize("name", [
    "mm_square_fp16.py", "mm_transposed_fp16.py", "mm_tril_fp16.py", "mm_matvec_fp16.py",
    "fused_linear_bias_gelu_scale_residual.py", "fused_linear_silu_mul_add.py",
    "fused_matmul_scale_tanh_add.py", "fused_conv2d_bias_relu_scale.py",
    "attn_sdpa_causal_fp16.py",
])
def test_bench_tasks_shrunk(name):
    source = open(os.path.join(TASKS, name)).read()
    check(shrink(source, 16 if name.startswith(("fused_conv", "attn")) else 64))


def test_views_follow_the_input_sizes():
    """The file is lowered at full size and run on shrunk inputs: views must not bake sizes."""
    body = ("    def __init__(self, d):\n        super().__init__()\n"
            "        self.fc = nn.Linear(d, d)\n"
            "    def forward(self, x):\n"
            "        y = x.view(x.size(0), -1)\n"
            "        return F.relu(self.fc(y)).view(x.size(0), 4, -1)\n")
    big = task(body, "[torch.randn(B, 4, 16)]", "[64]", consts="B = 32\n")
    low = lower_extern(big)
    assert low.ok, low.reason
    gen = load_generated(low.code, "extern_views")
    small = big.replace("B = 32", "B = 6")
    ns: dict = {}
    exec(small, ns)
    model = ns["Model"](*ns["get_init_inputs"]())
    new = gen["ModelNew"](*ns["get_init_inputs"]())
    new.load_state_dict(model.state_dict())
    x = ns["get_inputs"]()[0]
    torch.testing.assert_close(new(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("equation,shapes", [
    ("bijl,lk->bijk", "(2, 3, 5, 16), (16, 24)"),
    ("bik,bkj->bij", "(2, 20, 16), (2, 16, 24)"),
    ("ik,jk->ij", "(20, 16), (24, 16)"),
    ("bhqd,bhkd->bhqk", "(1, 2, 20, 16), (1, 2, 24, 16)"),
])
def test_einsum_as_matmul(equation, shapes):
    a, b = shapes.split("), (")
    src = task(NO_INIT + "    def forward(self, a, b):\n"
               f"        return torch.einsum('{equation}', a, b)\n",
               f"[torch.randn{a}), torch.randn({b}]")
    check(src, expect_kernels=1)


def test_baddbmm():
    src = task(NO_INIT + "    def forward(self, c, a, b):\n"
               "        return torch.relu(torch.baddbmm(c, a, b, beta=0.5, alpha=1.5))\n",
               "[torch.randn(2, 1, 24), torch.randn(2, 20, 16), torch.randn(2, 16, 24)]")
    check(src, expect_kernels=1)


def test_triangle_outside_a_matmul_is_an_elementwise_mask():
    src = task(NO_INIT + "    def forward(self, a, b):\n"
               "        return torch.triu(torch.relu(a) * b, diagonal=-1) + 1.0\n",
               "[torch.randn(2, 20, 24), torch.randn(2, 20, 24)]")
    check(src, expect_kernels=1)


def test_codegen_lower_takes_the_extern_templates_tunables():
    # The search workflows pass a matmul task's tunables through codegen.lower: its keys are the
    # extern templates' (mm.*), not the pointwise/reduction ones, and they must reach the file.
    import codegen

    src = task(NO_INIT + "    def forward(self, a, b):\n        return torch.matmul(a, b)\n",
               "[torch.randn(64, 32), torch.randn(32, 48)]")
    low = codegen.lower(src, tunables={"mm.BLOCK_M": 32, "mm.num_stages": 2})
    assert low.ok, low.reason
    assert "BLOCK_M=32" in low.code and "num_stages=2" in low.code and "mm.BLOCK_N" in low.space
    bad = codegen.lower(src, tunables={"mm.BLOCK_Q": 32})
    assert not bad.ok and "unknown tunables: mm.BLOCK_Q" in bad.reason


@pytest.mark.parametrize("inputs", [
    "[torch.randn(70, 48, dtype=torch.float16), torch.randn(48, 40, dtype=torch.float16)]",
    "[torch.randn(3, 37, 48), torch.randn(3, 48, 33)]",   # batched, edge tiles, fp32
])
def test_persistent_matmul_matches(inputs):
    # One program per SM walking the tiles (4 programs under the interpreter): more tiles than
    # programs, partial edge tiles and batches all have to land in the right place.
    src = task(NO_INIT + "    def forward(self, a, b):\n        return torch.matmul(a, b) * 0.5 + 1.0\n",
               inputs)
    low = check(src, tunables={"mm.PERSISTENT": 1, "mm.BLOCK_M": 16, "mm.BLOCK_N": 16, "mm.BLOCK_K": 16},
                expect_kernels=1)
    assert "flatten=True" in low.code and "multiprocessors(a.device)" in low.code


def test_persistent_linear_epilogue_with_residual():
    body = ("    def __init__(self):\n        super().__init__()\n"
            "        self.fc = nn.Linear(48, 40)\n"
            "    def forward(self, x, res):\n"
            "        return F.gelu(self.fc(x)) * 0.5 + res\n")
    src = task(body, "[torch.randn(2, 35, 48), torch.randn(2, 35, 40)]")
    check(src, tunables={"mm.PERSISTENT": 1, "mm.BLOCK_M": 16, "mm.BLOCK_N": 16, "mm.BLOCK_K": 16},
          expect_kernels=1)


def test_a_loaded_file_is_removed_when_its_process_exits():
    """load_generated writes the code to a folder of its own (Triton reads kernels' source from a
    file); a test run used to leave one a call in the temporary folder."""
    import subprocess
    import sys

    probe = ("from codegen.extern.loading import load_generated\n"
             "module = load_generated('answer = 42\\n', 'probe')\n"
             "print(module['__file__'], module['answer'])\n")
    root = os.path.join(os.path.dirname(__file__), "..")
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    path, answer = out.stdout.split()
    assert answer == "42" and path.endswith("probe.py")
    assert not os.path.exists(os.path.dirname(path))
