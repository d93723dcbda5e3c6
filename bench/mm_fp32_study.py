"""fp32 matmul on tensor cores: which 3xTF32 formulation and tiles reach cuBLAS's fp32 speed (GPU).

    python -m bench.mm_fp32_study [--shapes 8205x2949x5921,4096x4096x4096,512:1536x512x1024]

The judge holds fp32 results to 1e-4, which single-pass TF32 misses, so fp32 products run as three
TF32 products (hi*hi + hi*lo + lo*hi, where x = hi + lo and hi is x cut to TF32's 10-bit mantissa).
Two ways to get there:
- "tf32x3": Triton's own input_precision="tf32x3", which splits both tiles in registers on every
  K step (and on Hopper must write the split B tile back to shared memory for the MMA);
- "split": both operands split once beforehand (one memory-bound pass each), the K loop then loads
  hi and lo tiles and runs three plain TF32 dots straight from shared memory.
Each variant is checked against float64 on a row slice (the judge's elementwise rule, atol = rtol =
1e-4) and timed with triton.testing.do_bench (median), beside torch.matmul (cuBLAS fp32) and, as a
ceiling, single-pass TF32.
"""
from __future__ import annotations

import argparse
import json

import torch
import triton
import triton.language as tl


@triton.jit
def split_tf32_kernel(x_ptr, hi_ptr, lo_ptr, n_elements, BLOCK: tl.constexpr):
    """x = hi + lo exactly, hi keeping TF32's 10 mantissa bits (the low 13 bits cleared)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    hi = (x.to(tl.int32, bitcast=True) & -8192).to(tl.float32, bitcast=True)
    tl.store(hi_ptr + offs, hi, mask=mask)
    tl.store(lo_ptr + offs, x - hi, mask=mask)


def split_tf32(x):
    hi, lo = torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    split_tf32_kernel[(triton.cdiv(n, 4096),)](x, hi, lo, n, BLOCK=4096, num_warps=8)
    return hi, lo


@triton.jit
def matmul_fp32_kernel(a_ptr, a_lo_ptr, b_ptr, b_lo_ptr, c_ptr, M, N, K,
                       stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn,
                       stride_cb, stride_cm, stride_cn,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                       GROUP_M: tl.constexpr, PRESPLIT: tl.constexpr, PRECISION: tl.constexpr):
    """C[b] = A[b] @ B[b]. PRESPLIT: a/b hold the TF32 high parts, a_lo/b_lo the remainders."""
    pid = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    offs_k = tl.arange(0, BLOCK_K)
    a_offsets = batch * stride_ab + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_offsets = batch * stride_bb + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_mask = offs_k < K - k * BLOCK_K
        a = tl.load(a_ptr + a_offsets, mask=k_mask[None, :], other=0.0)
        b = tl.load(b_ptr + b_offsets, mask=k_mask[:, None], other=0.0)
        if PRESPLIT:
            a_lo = tl.load(a_lo_ptr + a_offsets, mask=k_mask[None, :], other=0.0)
            b_lo = tl.load(b_lo_ptr + b_offsets, mask=k_mask[:, None], other=0.0)
            # the small cross terms first, so they are not lost against the large one
            acc = tl.dot(a_lo, b, acc, input_precision="tf32")
            acc = tl.dot(a, b_lo, acc, input_precision="tf32")
            acc = tl.dot(a, b, acc, input_precision="tf32")
        else:
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_offsets += BLOCK_K * stride_ak
        b_offsets += BLOCK_K * stride_bk
    offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
    tl.store(c_ptr + batch * stride_cb + offs_cm[:, None] * stride_cm + offs_cn[None, :] * stride_cn, acc,
             mask=c_mask)


def matmul_fp32(a, b, cfg, variant):
    """a (batch, M, K) @ b (batch, K, N); variant "split", "tf32x3", "tf32" or "ieee"."""
    batch, M, K = a.shape
    N = b.shape[2]
    c = torch.empty((batch, M, N), device=a.device, dtype=torch.float32)
    if variant == "split":
        a, a_lo = split_tf32(a)
        b, b_lo = split_tf32(b)
    else:
        a_lo, b_lo = a, b
    grid = (triton.cdiv(M, cfg["BLOCK_M"]) * triton.cdiv(N, cfg["BLOCK_N"]), batch)
    matmul_fp32_kernel[grid](a, a_lo, b, b_lo, c, M, N, K, *a.stride(), *b.stride(), *c.stride(),
                             BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"],
                             GROUP_M=8, PRESPLIT=variant == "split",
                             PRECISION="tf32x3" if variant == "split" else variant,
                             num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return c


CONFIGS = [  # BLOCK_M, BLOCK_N, BLOCK_K, warps, stages
    (128, 128, 32, 8, 3), (128, 128, 32, 4, 3), (128, 256, 32, 8, 3), (256, 128, 32, 8, 3),
    (128, 128, 16, 4, 4), (128, 128, 16, 8, 4), (128, 128, 64, 8, 2), (64, 128, 32, 4, 4),
    (128, 64, 32, 4, 4), (128, 256, 16, 8, 4),
]


def within_tolerance(got, ref64, atol=1e-4, rtol=1e-4):
    err = (got.double() - ref64).abs()
    return bool((err <= atol + rtol * ref64.abs()).all()), float(err.max() / ref64.abs().max())


def study(shape: str, variants: list[str]) -> list[dict]:
    batch, _, rest = shape.rpartition(":")
    M, K, N = map(int, rest.split("x"))
    batch = int(batch or 1)
    torch.manual_seed(0)
    a = torch.randn(batch, M, K, device="cuda")
    b = torch.randn(batch, K, N, device="cuda")
    rows_checked = min(M, 256)
    ref64 = torch.matmul(a[:1, :rows_checked].double(), b[:1].double())
    flops = 2.0 * batch * M * N * K
    rows = []

    def record(name, fn, cfg=None, check=True):
        try:
            out = fn()
            ok, rel = within_tolerance(out[:1, :rows_checked], ref64) if check else (None, None)
            ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
        except Exception as e:  # a config that does not compile or fit: say so, go on
            rows.append({"shape": shape, "variant": name, "cfg": cfg, "error": f"{type(e).__name__}: {str(e)[:120]}"})
            print(json.dumps(rows[-1]), flush=True)
            return
        rows.append({"shape": shape, "variant": name, "cfg": cfg, "ms": round(ms, 4),
                     "tflops": round(flops / ms / 1e9, 1), "within_1e-4": ok, "max_err_over_scale": rel})
        print(json.dumps(rows[-1]), flush=True)

    torch.backends.cuda.matmul.allow_tf32 = False
    record("cublas_fp32", lambda: torch.matmul(a, b))
    torch.backends.cuda.matmul.allow_tf32 = True
    record("cublas_tf32", lambda: torch.matmul(a, b))
    torch.backends.cuda.matmul.allow_tf32 = False
    record("split_only", lambda: (split_tf32(a), split_tf32(b)), check=False)
    for variant in variants:
        for bm, bn, bk, w, s in CONFIGS:
            cfg = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": w, "num_stages": s}
            record(variant, lambda: matmul_fp32(a, b, cfg, variant), cfg)
    del a, b
    torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="8205x2949x5921,4096x4096x4096,512:1536x512x1024")
    parser.add_argument("--variants", default="split,tf32x3,tf32")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [r for s in args.shapes.split(",") for r in study(s, args.variants.split(","))]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
