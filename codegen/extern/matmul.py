"""Triton matmul template: tiled, grouped launch order, fp32 accumulation, fused epilogue.

Covers torch.matmul's whole family through one batched kernel, C[b] = A[b] @ B[b], on strided
views (a transposed operand is a stride swap, never a copy): mm, bmm, matvec, linear/addmm
(weight.t() as B, the bias in the epilogue), N-d tensor @ matrix (leading dims folded into M: one
large GEMM), broadcast batches (stride 0), and triangular operands or products (masked loads, and
K ranges or whole tiles skipped where the triangle makes them zero).
"""
from __future__ import annotations

from codegen.extern.epilogue import (TileSpace, dot_parameters, jit_source, launch_lines, launcher_start,
                                      store_lines, var)

SPACE = TileSpace(
    suffixes=["b", "m", "n"],
    index=["batch", "offs_cm[:, None]", "offs_cn[None, :]"],
    masks=[None, "mask_m[:, None]", "mask_n[None, :]"],
    row_dim=1,
    col_dim=2,
)

# Shared by every matmul launcher in a file; emitted once.
HELPERS = '''
def matmul_operands(a, b):
    """View torch.matmul's operands as (batch, M, K) and (batch, K, N) without copying.

    Returns the two views, the shape torch.matmul gives, and the (batch, M, N) shape the kernel
    writes. A matrix right operand folds the left one's leading dims into M (one large GEMM)
    whenever its strides allow; otherwise batches broadcast with stride 0.
    """
    if a.dim() == 2 and b.dim() == 2:  # the common case, kept cheap: this runs every call
        M, N = a.shape[0], b.shape[1]
        return a.unsqueeze(0), b.unsqueeze(0), (M, N), (1, M, N)
    a_is_vector, b_is_vector = a.dim() == 1, b.dim() == 1
    if a_is_vector:
        a = a.unsqueeze(0)
    if b_is_vector:
        b = b.unsqueeze(-1)
    M, K = a.shape[-2:]
    N = b.shape[-1]
    batch_shape = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out_shape = list(batch_shape) + [M, N]
    if b_is_vector:
        out_shape.pop(-1)
    if a_is_vector:
        out_shape.pop(-2 if not b_is_vector else -1)
    folded = None
    if b.dim() == 2 and a.dim() > 2:
        try:
            folded = a.view(1, -1, K)
        except RuntimeError:  # leading dims not mergeable (e.g. a transposed batch): batch it
            folded = None
    if folded is not None:
        a3, b3 = folded, b.unsqueeze(0)
    else:
        a3 = a.expand(*batch_shape, M, K).reshape(-1, M, K)
        b3 = b.expand(*batch_shape, K, N).reshape(-1, K, N)
    kernel_shape = (a3.shape[0], a3.shape[1], N)
    return a3, b3, tuple(out_shape), kernel_shape


def aligned_operands(a, b):
    """The operands of a compute-bound product as Triton loads them fastest. Returns (a, b, the
    column count b's tiles wrap at).

    Triton vectorises a tile's loads only along pitches, masks and wrap-arounds it knows are
    multiples of 16: an irregular K or N (2949, 5921) otherwise loads element by element, at half
    cuBLAS's speed. Such operands are copied once: K zero-padded to a multiple of 64 on both sides
    (zeros add nothing to the products) and b's rows padded to a multiple of 16 columns, which its
    tiles then wrap at (the padding columns feed only output columns the store leaves out)."""
    K, N = a.shape[2], b.shape[2]

    def aligned(t):
        contiguous_dim = 2 if t.stride(2) == 1 else 1 if t.stride(1) == 1 else None
        pitch_dim = 3 - contiguous_dim if contiguous_dim else None
        return (pitch_dim is not None and t.stride(pitch_dim) % 16 == 0 and t.stride(0) % 16 == 0
                and t.data_ptr() % 16 == 0)
    if K % 16 == 0 and N % 16 == 0 and aligned(a) and aligned(b):
        return a, b, N
    padded_k, padded_n = -(-K // 64) * 64, -(-N // 16) * 16

    def padded(t, rows, cols):
        if t.stride(0) == 0:  # a broadcast batch: pad one, broadcast it again
            return padded(t[:1], rows, cols).expand(t.shape[0], -1, -1)
        out = torch.empty((t.shape[0], rows, cols), dtype=t.dtype, device=t.device)
        out[:, t.shape[1]:].zero_()
        out[:, :t.shape[1], t.shape[2]:].zero_()
        out[:, :t.shape[1], :t.shape[2]].copy_(t)
        return out
    return padded(a, a.shape[1], padded_k), padded(b, padded_k, padded_n), padded_n


_MULTIPROCESSORS = {}


def multiprocessors(device):
    """Streaming multiprocessors of `device` (a few under the CPU interpreter), looked up once."""
    if device.type != "cuda":
        return 4
    if device not in _MULTIPROCESSORS:
        _MULTIPROCESSORS[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return _MULTIPROCESSORS[device]


def epilogue_operand(t, out_shape, kernel_shape):
    """An epilogue input broadcast (stride 0) to the result, viewed like the kernel's output."""
    return t.expand(out_shape).reshape(kernel_shape)
'''


# A triangular operand: (the elements its tile keeps, the K range it limits), by (operand, triangle).
# Operand a has rows m and columns k; operand b rows k and columns n.
TRIANGLE_BOUNDS = {
    ("a", "lower"): ("offs_kk[None, :] <= offs_am[:, None] + {d}",
                     "k_end = tl.minimum(k_end, tl.cdiv((pid_m + 1) * BLOCK_M + {d}, BLOCK_K))"),
    ("a", "upper"): ("offs_kk[None, :] >= offs_am[:, None] + {d}",
                     "k_start = tl.maximum(k_start, (pid_m * BLOCK_M + {d}) // BLOCK_K)"),
    ("b", "lower"): ("offs_bn[None, :] <= offs_kk[:, None] + {d}",
                     "k_start = tl.maximum(k_start, (pid_n * BLOCK_N - {d}) // BLOCK_K)"),
    ("b", "upper"): ("offs_bn[None, :] >= offs_kk[:, None] + {d}",
                     "k_end = tl.minimum(k_end, tl.cdiv((pid_n + 1) * BLOCK_N - {d}, BLOCK_K))"),
}


def emit(g) -> tuple[str, str]:
    """(kernel source, launcher source) for one matmul group `g` (see lowering.MatmulGroup)."""
    ep = g.epilogue
    kname = f"{g.kernel_name}_kernel"
    out_params = [f"{var(o.name)}_out_ptr" for o in g.outputs]
    params = ["a_ptr", "b_ptr"] + out_params + ep.stride_params(SPACE) + [
        "M", "N", "K", "LOAD_N",
        "stride_ab", "stride_am", "stride_ak",
        "stride_bb", "stride_bk", "stride_bn",
        "stride_cb", "stride_cm", "stride_cn",
        "BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr", "BLOCK_K: tl.constexpr",
        "GROUP_M: tl.constexpr", "EVEN_K: tl.constexpr", "INT64_INDEX: tl.constexpr",
    ]
    persistent = getattr(g, "persistent", False)
    if persistent:
        params.insert(params.index("M"), "num_programs")
    dot_kw, half = dot_parameters(g, params)

    # K range and masks for triangular operands / products.
    k_bounds, a_keep, b_keep = [], None, None
    keep = {}
    for side, kind, diag in g.operand_triangles:
        mask, bound = TRIANGLE_BOUNDS[side, kind]
        keep[side] = mask.format(d=diag)
        k_bounds.append(bound.format(d=diag))
    a_keep, b_keep = keep.get("a", a_keep), keep.get("b", b_keep)
    if g.output_triangle is not None:
        kind, diag = g.output_triangle
        zero = (f"pid_n * BLOCK_N > (pid_m + 1) * BLOCK_M - 1 + {diag}" if kind == "lower"
                else f"(pid_n + 1) * BLOCK_N - 1 < pid_m * BLOCK_M + {diag}")
        k_bounds.append(f"# A tile wholly outside the {kind} triangle is all zeros: skip its K loop.\n"
                        f"k_end = tl.where({zero}, 0, k_end)")

    lines = [
        "# Grouped launch order: GROUP_M row-tiles in a row reuse each column panel of B from L2.",
        "pid = tl.program_id(0)",
        "batch = tl.program_id(1).to(tl.int64)",
        "num_pid_m = tl.cdiv(M, BLOCK_M)",
        "num_pid_n = tl.cdiv(N, BLOCK_N)",
        "num_pid_in_group = GROUP_M * num_pid_n",
        "group_id = pid // num_pid_in_group",
        "first_pid_m = group_id * GROUP_M",
        "group_size_m = min(num_pid_m - first_pid_m, GROUP_M)",
        "pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)",
        "pid_n = (pid % num_pid_in_group) // group_size_m",
        "",
        "# Rows and columns past the edge wrap around, so K-loop loads need only the K mask;",
        "# the store masks them out.",
        "offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M",
        "offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % LOAD_N  # b's columns, padding included",
        "offs_k = tl.arange(0, BLOCK_K)",
        "if INT64_INDEX:  # an operand or result of 2**31 elements or more: 64-bit tile offsets",
        "    offs_am = offs_am.to(tl.int64)",
        "    offs_bn = offs_bn.to(tl.int64)",
        "    offs_k = offs_k.to(tl.int64)",
        "# The batch offset goes on the base pointers: tile offsets stay 32-bit (below 2**31).",
        "a_ptr += batch * stride_ab",
        "b_ptr += batch * stride_bb",
    ]
    if k_bounds:
        lines += ["# K tiles where a triangular operand is all zeros are skipped.",
                  "k_start = pid_m * 0", "k_end = tl.cdiv(K, BLOCK_K) + pid_m * 0"] + k_bounds
        loop = "for k in range(k_start, k_end):"
        lines += [
            "a_ptrs = a_ptr + offs_am[:, None] * stride_am"
            " + (k_start * BLOCK_K + offs_k[None, :]) * stride_ak",
            "b_ptrs = b_ptr + (k_start * BLOCK_K + offs_k[:, None]) * stride_bk"
            " + offs_bn[None, :] * stride_bn",
        ]
    else:
        loop = "for k in range(0, tl.cdiv(K, BLOCK_K)):"
        lines += [
            "a_ptrs = a_ptr + offs_am[:, None] * stride_am"
            " + offs_k[None, :] * stride_ak",
            "b_ptrs = b_ptr + offs_k[:, None] * stride_bk"
            " + offs_bn[None, :] * stride_bn",
        ]
    body = []
    if a_keep or b_keep:
        a_mask, b_mask = "k_mask[None, :]", "k_mask[:, None]"
        body += ["k_mask = offs_k < K - k * BLOCK_K", "offs_kk = k * BLOCK_K + offs_k"]
        if a_keep:
            a_mask = f"{a_mask} & ({a_keep})"
        if b_keep:
            b_mask = f"{b_mask} & ({b_keep})"
        body += [
            f"a_tile = tl.load(a_ptrs, mask={a_mask}, other=0.0)",
            f"b_tile = tl.load(b_ptrs, mask={b_mask}, other=0.0)",
        ]
    else:
        body += [
            "# When BLOCK_K divides K every tile is whole: unmasked loads pipeline best.",
            "if EVEN_K:",
            "    a_tile = tl.load(a_ptrs)",
            "    b_tile = tl.load(b_ptrs)",
            "else:",
            "    k_mask = offs_k < K - k * BLOCK_K",
            "    a_tile = tl.load(a_ptrs, mask=k_mask[None, :], other=0.0)",
            "    b_tile = tl.load(b_ptrs, mask=k_mask[:, None], other=0.0)",
        ]
    if half:
        body += ["if WIDEN_DOT:  # CPU interpreter only: its bf16 dot is wrong, its fp16 dot slow",
                 "    a_tile = a_tile.to(tl.float32)",
                 "    b_tile = b_tile.to(tl.float32)"]
    body += [
        f"acc = tl.dot(a_tile, b_tile, acc{dot_kw})",
        "a_ptrs += BLOCK_K * stride_ak",
        "b_ptrs += BLOCK_K * stride_bk",
    ]
    epilogue = [
        "# Epilogue on the fp32 accumulator, then one store per result.",
        "offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
        "offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
        "mask_m = offs_cm < M",
        "mask_n = offs_cn < N",
        "c_mask = mask_m[:, None] & mask_n[None, :]",
        "if INT64_INDEX:",
        "    offs_cm = offs_cm.to(tl.int64)",
        "    offs_cn = offs_cn.to(tl.int64)",
    ]
    epilogue += [ep.operand_load(op, SPACE) for op in ep.operands.values()]
    epilogue += [line for _, line in ep.expressions(SPACE)]
    epilogue.append("c_offsets = offs_cm[:, None] * stride_cm + offs_cn[None, :] * stride_cn")
    epilogue += store_lines(g, ep, "batch * stride_cb + c_offsets", "c_mask")
    if persistent:
        lines = _persistent_body(body, epilogue)
    else:
        lines += ["", "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)", loop]
        lines += ["    " + b for b in body]
        lines += [""] + epilogue
    kernel = jit_source(kname, params, g.doc + "", lines)

    # Launcher.
    cfg = f"{g.kernel_name.upper()}_CONFIG"
    setup = [f"    a, b, out_shape, kernel_shape = matmul_operands({g.a_expr}, {g.b_expr})",
             "    batch, M, K = a.shape",
             "    N = b.shape[2]",
             "    load_n = N",
             "    if min(M, N) >= 64:  # compute-bound: aligned operands are worth a copy",
             "        a, b, load_n = aligned_operands(a, b)",
             "        K = a.shape[2]"]
    L, prepared, outs = launcher_start(g, setup, "epilogue_operand({0}, out_shape, kernel_shape)", "kernel_shape",
                                       "a.device")
    L.append(f'    tiles = cdiv(M, {cfg}["BLOCK_M"]) * cdiv(N, {cfg}["BLOCK_N"])')
    if persistent:
        L.append("    programs = min(tiles, multiprocessors(a.device))  # one resident program per SM")
        L.append("    grid = (programs, batch)")
    else:
        L.append("    grid = (tiles, batch)")
    call = (["a", "b"] + outs + ep.stride_args(prepared, SPACE) + (["programs"] if persistent else [])
            + ["M", "N", "K", "load_n", "*a.stride()", "*b.stride()", f"*{outs[0]}.stride()"]
            + [f'EVEN_K=K % {cfg}["BLOCK_K"] == 0', "INT64_INDEX=max(M * K, K * N, M * N) >= 2**31"]
            + (["WIDEN_DOT=INTERPRETED"] if half else []) + [f"**{cfg}"])
    L += launch_lines(kname, call, [f"{o}.view(out_shape)" for o in outs])
    return kernel, "\n".join(L) + "\n"


def _persistent_body(k_body: list[str], epilogue: list[str]) -> list[str]:
    """Kernel body of the persistent variant: one program per SM walks the tiles in grouped order.

    `flatten=True` merges the tile loop and the K loop into one software-pipelined loop, so the
    loads of a tile's first K blocks are in flight while the previous tile's epilogue runs; with
    short K (few K blocks per tile) that epilogue is otherwise a bubble on every tile.
    """
    tile_pids = [
        "group_id = tile_id // num_pid_in_group",
        "first_pid_m = group_id * GROUP_M",
        "group_size_m = min(num_pid_m - first_pid_m, GROUP_M)",
        "pid_m = first_pid_m + ((tile_id % num_pid_in_group) % group_size_m)",
        "pid_n = (tile_id % num_pid_in_group) // group_size_m",
    ]
    lines = [
        "pid = tl.program_id(0)",
        "batch = tl.program_id(1).to(tl.int64)",
        "num_pid_m = tl.cdiv(M, BLOCK_M)",
        "num_pid_n = tl.cdiv(N, BLOCK_N)",
        "num_tiles = num_pid_m * num_pid_n",
        "k_tiles = tl.cdiv(K, BLOCK_K)",
        "# Grouped order: GROUP_M row-tiles in a row reuse each column panel of B from L2.",
        "num_pid_in_group = GROUP_M * num_pid_n",
        "offs_k = tl.arange(0, BLOCK_K)",
        "if INT64_INDEX:  # an operand or result of 2**31 elements or more: 64-bit tile offsets",
        "    offs_k = offs_k.to(tl.int64)",
        "# The batch offset goes on the base pointers: tile offsets stay 32-bit (below 2**31).",
        "a_ptr += batch * stride_ab",
        "b_ptr += batch * stride_bb",
        "# The epilogue follows its own tile counter: the pipelined loop runs ahead of it.",
        "tile_id_c = pid - num_programs",
        "for tile_id in tl.range(pid, num_tiles, num_programs, flatten=True):",
    ] + ["    " + t for t in tile_pids] + [
        "    # Rows and columns past the edge wrap around; the store masks them out.",
        "    offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M",
        "    offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % LOAD_N",
        "    if INT64_INDEX:",
        "        offs_am = offs_am.to(tl.int64)",
        "        offs_bn = offs_bn.to(tl.int64)",
        "    a_ptrs = a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak",
        "    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn",
        "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        "    for k in range(0, k_tiles):",
    ] + ["        " + b for b in k_body] + [
        "",
        "    tile_id_c += num_programs",
    ] + ["    " + t.replace("tile_id", "tile_id_c") for t in tile_pids] + ["    " + e for e in epilogue]
    return lines
