"""The embedded generator's one tunable space, its per-shape defaults, and a neighbour move for searches.

Keys are "<kernel family>.<knob>". Every generated file carries the values it was built with as
module-level constants, so a person can also edit them by hand.
"""
from __future__ import annotations

import random

import torch

SPACE: dict[str, list] = {
    # pointwise kernels: elements per program, warps
    "pointwise.BLOCK": [256, 512, 1024, 2048, 4096, 8192],
    "pointwise.num_warps": [2, 4, 8, 16],
    # pools over a tensor in memory: a stride-2 window's two middle taps read as one vector (1)
    "pointwise.pool_pairs": [0, 1],
    # ... a window of 8 or more taps moving 4 or more along the last dim: its taps one vector (1)
    "pointwise.pool_runs": [0, 1],
    # a pool's tile: each output reads several inputs, so fewer outputs a program than pointwise
    "pointwise.pool_BLOCK": [128, 256, 512, 1024, 2048],
    # row kernels (reductions, normalisations, scans)
    "reduce.strategy": ["auto", "persistent", "looped"],  # whole rows in registers, or a column loop
    "reduce.persistent_max": [2048, 4096, 8192, 16384, 32768],  # "auto": longest row kept whole
    "reduce.TILE": [1024, 2048, 4096, 8192, 16384],  # elements per persistent row block / strided loop step
    "reduce.BLOCK_N": [256, 512, 1024, 2048, 4096, 8192],  # column block of a looped reduction
    "reduce.num_warps": [0, 1, 2, 4, 8, 16, 32],  # 0: picked from the block size
    "reduce.strided_BLOCK_M": [16, 32, 64, 128, 256],  # rows per program, reduced dims not innermost
    "reduce.split_programs": [0, 256, 512, 1024, 2048],  # few long rows: programs sharing them (0: no split)
    "num_stages": [1, 2, 3, 4],
    # templates (codegen.extern): matmul, flash attention, convolution layout and epilogue,
    # the elementwise kernel that follows other convolutions
    "mm.BLOCK_M": [32, 64, 128, 256],
    "mm.BLOCK_N": [16, 32, 64, 128, 256],
    "mm.BLOCK_K": [32, 64, 128],
    "mm.GROUP_M": [1, 4, 8, 16],
    "mm.num_warps": [2, 4, 8],
    "mm.num_stages": [2, 3, 4, 5],
    # 1: one program per SM walks the tiles, the next tile's loads overlapping this one's epilogue.
    "mm.PERSISTENT": [0, 1],
    # fp32 only: "ieee" is exact fp32, "tf32x3" is ~fp32 accuracy on tensor cores, "tf32" is fast
    # but only matches references that allow tf32 themselves.
    "mm.INPUT_PRECISION": ["ieee", "tf32x3", "tf32"],
    "attn.BLOCK_M": [64, 128],
    "attn.BLOCK_N": [32, 64, 128],
    "attn.num_warps": [4, 8],
    "attn.num_stages": [2, 3, 4],
    "attn.INPUT_PRECISION": ["ieee", "tf32x3", "tf32"],
    "attn.TMA": [0, 1],  # keys and values through tensor descriptors where the operands allow
    # 2-D convolutions (and transposed ones without groups or dilation): cuDNN on channels-last
    # copies (1) or on the NCHW tensors as given (0).
    "conv.channels_last": [0, 1],
    "conv.BLOCK_C": [16, 32, 64],
    "conv.BLOCK_HW": [32, 64, 128, 256],
    "conv.num_warps": [2, 4, 8],
    "ew.BLOCK_SIZE": [256, 512, 1024, 2048, 4096],
    "ew.num_warps": [2, 4, 8],
    # a convolution with nothing fused around it (codegen.conv_direct): a program's tile of output
    # channels x positions; depthwise rows each read their own plane; positions of a 1-D
    # convolution, and of a transposed convolution's stride phase, have their own tiles
    "direct_conv.BLOCK_R": [4, 8, 16, 32, 64],
    "direct_conv.BLOCK_R_DEPTHWISE": [2, 4, 8, 16],
    "direct_conv.BLOCK_S": [64, 128, 256, 512, 1024],
    "direct_conv.BLOCK_S_1D": [128, 256, 512, 1024],
    "direct_conv.BLOCK_S_TRANSPOSED": [128, 256, 512, 1024],
    "direct_conv.num_warps": [2, 4, 8],
    # a lone convolution without groups, or a transposed one in stride phases (codegen.conv_gemm): an
    # implicit GEMM on tensor cores (1), or the direct kernel above (0); its tile (rows, the output
    # channels times a transposed one's phases: at most this many), warps, steps in flight, fp32's
    # precision on the tensor cores, and whether a 1x1 kernel reads a channels-last copy of its
    # input like the others (1) or NCHW in place (0)
    "conv_gemm.use": [1, 0],
    "conv_gemm.BLOCK_CO": [64, 128, 256],
    "conv_gemm.BLOCK_P": [32, 64, 128, 256],
    "conv_gemm.BLOCK_K": [16, 32, 64],
    "conv_gemm.num_warps": [4, 8],
    "conv_gemm.num_stages": [2, 3, 4],
    "conv_gemm.INPUT_PRECISION": ["tf32", "tf32x3", "ieee"],
    "conv_gemm.channels_last": [0, 1],
}

# The knobs of each kernel family: a file's search space is its families' knobs.
FAMILIES = {
    "pointwise": ("pointwise.", "reduce.", "num_stages"),  # the fused kernels of codegen.lower
    "matmul": ("mm.",), "attention": ("attn.",), "conv": ("conv.",), "elementwise": ("ew.",),
    "direct_conv": ("direct_conv.",), "conv_gemm": ("conv_gemm.",),
}


def space_of(*families: str) -> dict:
    prefixes = tuple(p for f in families for p in FAMILIES[f])
    return {k: v for k, v in SPACE.items() if k.startswith(prefixes)}

DEFAULTS: dict[str, object] = {
    "pointwise.BLOCK": 1024,
    "pointwise.num_warps": 4,
    "pointwise.pool_pairs": 1,
    "pointwise.pool_runs": 1,
    # H200, bench/extern_sweep.py at benchmark size (4.3 GB inputs), 1024 -> 512: max pool 1-D
    # 1.69 -> 1.49 ms, avg pool 2-D 1.59 -> 1.38, max pool 2-D 1.51 -> 1.24 (256 and 2 or 8 warps no better)
    "pointwise.pool_BLOCK": 512,
    "reduce.strategy": "auto",
    "reduce.persistent_max": 16384,
    "reduce.TILE": 4096,
    "reduce.BLOCK_N": 2048,
    "reduce.num_warps": 0,
    "reduce.strided_BLOCK_M": 64,
    "reduce.split_programs": 1024,
    "num_stages": 1,
}

# A lone convolution's direct kernel (codegen.conv_direct), a family of its own: its file has no
# pointwise or row kernels. H100, bench/tasks_large: depthwise 3x3 at 4 rows 2.05 ms, 8: 2.86,
# 16: 8.03; a 1-D convolution at 512 positions 1.21x over 256. H200, bench/extern_sweep.py, a
# transposed convolution's phases at 512 positions against 256: 2-D 3.93 / 4.68 ms, 1-D 4.98 /
# 5.10, 3-D 9.78 / 10.18 (1024 slower on all three; 2 warps mixed).
DIRECT_CONV_DEFAULTS: dict[str, object] = {
    "direct_conv.BLOCK_R": 16,
    "direct_conv.BLOCK_R_DEPTHWISE": 4,
    "direct_conv.BLOCK_S": 256,
    "direct_conv.BLOCK_S_1D": 512,
    "direct_conv.BLOCK_S_TRANSPOSED": 512,
    "direct_conv.num_warps": 4,
}

# The implicit GEMM's tile, 128 output channels x 128 positions x 32 channels a step, 8 warps, 3
# stages: on an H200 (bench/results/h200_conv_gemm.md) none of the neighbours tried on public 63
# was faster (64 or 256 positions, 4 stages, 4 warps: 6.0-7.8 ms against 5.95); the launcher
# narrows it for fewer channels and widens it for long reductions. fp32 in TF32 where the
# reference's own convolution runs so (codegen/conv_gemm.py).
CONV_GEMM_DEFAULTS: dict[str, object] = {
    "conv_gemm.use": 1,
    "conv_gemm.BLOCK_CO": 128,
    "conv_gemm.BLOCK_P": 128,
    "conv_gemm.BLOCK_K": 32,
    "conv_gemm.num_warps": 8,
    "conv_gemm.num_stages": 3,
    "conv_gemm.INPUT_PRECISION": "tf32",
    "conv_gemm.channels_last": 0,
}

TARGET_DEFAULTS: dict[str, dict] = {
    "cuda": {},
    "cpu": {"reduce.persistent_max": 8192},
}


def resolve(tunables: dict | None, target: str = "cuda", defaults: dict | None = None) -> dict:
    """`defaults` (the fused kernels' for `target` unless given), overridden by `tunables`
    (unknown keys are an error; other families' knobs do not apply to the file and are left out)."""
    out = dict(DEFAULTS) | TARGET_DEFAULTS.get(target, {}) if defaults is None else dict(defaults)
    problem = check_keys(tunables)
    if problem:
        raise KeyError(problem)
    for key, value in (tunables or {}).items():
        if key in out:
            out[key] = value
    return out


def neighbour(space: dict, tunables: dict, seed: int) -> dict:
    """A point next to `tunables`: one knob moved one step along its list (wrapping at the ends)."""
    rng = random.Random(seed)
    keys = sorted(k for k, v in space.items() if len(v) > 1)
    out = dict(tunables)
    if not keys:
        return out
    key = rng.choice(keys)
    values = space[key]
    current = out.get(key, values[0])
    i = values.index(current) if current in values else 0
    step = rng.choice([-1, 1])
    j = i + step
    if j < 0 or j >= len(values):
        j = i - step
    out[key] = values[j]
    return out


# ---------------------------------------------------------------------------------------------
# template defaults (H100), by dtype and shape

_HALF = (torch.float16, torch.bfloat16)


# Half-precision products at least this large (2*M*N*K flops) run persistent (H100 sweep,
# bench/extern_sweep.py: 4096^3 fp16 0.207 -> 0.187 ms, linear + SiLU + residual 0.304 -> 0.249 ms;
# a 34 GFLOP product was slower persistent).
PERSISTENT_MIN_FLOPS = 5e10


def matmul_defaults(dtype: torch.dtype, M: int, N: int, K: int, target: str = "cuda",
                    full_epilogue_operand: bool = False) -> dict:
    """H100 defaults: large tiles for half precision, smaller for fp32 (twice the bytes per tile).

    `full_epilogue_operand`: the epilogue reads a tensor of the output's size (a residual), whose
    tile competes with the accumulator for registers: 128x128 tiles then beat 128x256."""
    if dtype in _HALF:
        cfg = {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8,
               "num_stages": 3, "INPUT_PRECISION": "ieee", "PERSISTENT": 0}
        if 2 * M * N * K >= PERSISTENT_MIN_FLOPS:
            cfg.update(PERSISTENT=1, num_stages=4, BLOCK_N=128 if full_epilogue_operand else 256)
    else:
        # fp32 as three TF32 products: tall 256x64 tiles (H100 sweep, bench/extern_sweep.py: 4096^3
        # + bias + GELU 3.72 -> 2.35 ms, bmm 512x1536x512x1024 22.2 -> 13.1 ms, beside 128x128).
        cfg = {"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 8,
               "num_stages": 3, "INPUT_PRECISION": "tf32x3", "PERSISTENT": 0}
    if N <= 16:  # matrix-vector: one skinny column tile, many row tiles, deep K steps
        cfg.update(BLOCK_M=64, BLOCK_N=16, BLOCK_K=256 if dtype in _HALF else 128,
                   num_warps=4, num_stages=4)
    elif N <= 64 or M <= 64:
        cfg.update(BLOCK_M=64 if M <= 64 else 128, BLOCK_N=64, num_warps=4, num_stages=4)
    elif M * N <= 1024 * 1024:  # too few large tiles to fill 132 SMs
        cfg.update(BLOCK_M=128, BLOCK_N=128, num_warps=8 if dtype in _HALF else 4)
    return cfg


def attention_defaults(dtype: torch.dtype, head_dim: int, target: str = "cuda") -> dict:
    if dtype in _HALF:
        # H100 sweep (bench/extern_sweep.py): head_dim 64 runs best with 64-row query blocks
        # (more programs in flight), 128 with 128-row blocks and 8 warps.
        cfg = {"BLOCK_M": 128 if head_dim > 64 else 64, "BLOCK_N": 64, "num_warps": 8 if head_dim > 64 else 4,
               "num_stages": 3, "INPUT_PRECISION": "ieee", "TMA": 0}
        if head_dim > 64:
            # keys and values through TMA descriptors, 128 at a time (H100 study at head_dim 128:
            # 10.3 -> 9.0 ms causal, 18.5 -> 17.2 non-causal; 64-key blocks through TMA: 9.8, 17.5)
            cfg.update(BLOCK_N=128, TMA=1)
    else:
        cfg = {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2,
               "INPUT_PRECISION": "tf32x3", "TMA": 0}
    return cfg


def conv_defaults(target: str = "cuda") -> dict:
    return {"channels_last": 1, "BLOCK_C": 32, "BLOCK_HW": 128, "num_warps": 4}


def elementwise_defaults(target: str = "cuda") -> dict:
    return {"BLOCK_SIZE": 1024, "num_warps": 4}


def apply_overrides(prefix: str, cfg: dict, tunables: dict | None) -> dict:
    """cfg updated with the `prefix.*` entries of tunables."""
    out = dict(cfg)
    for key, value in (tunables or {}).items():
        family, _, name = key.partition(".")
        if family == prefix and name in out:
            out[name] = value
    return out


def check_keys(tunables: dict | None) -> str | None:
    unknown = [k for k in (tunables or {}) if k not in SPACE]
    return f"unknown tunables: {', '.join(sorted(unknown))}" if unknown else None
