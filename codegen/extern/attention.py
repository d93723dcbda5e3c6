"""Triton flash-attention template for scaled_dot_product_attention (forward).

One program owns BLOCK_M query rows of one (batch, head) and streams the keys and values in
BLOCK_N blocks with an online softmax (running max and sum, exp2 with log2(e) folded into the
scale), so the L x S score matrix never reaches memory. Causal masking is top-left aligned, as in
torch (query i sees keys 0..i), and causal programs stop at their diagonal block. The pointwise
chain after the attention is fused into the store.

Keys and values are read through tensor descriptors (Hopper's TMA) where they can be: half
inputs, contiguous, whole key blocks, a power-of-two head dim. On an H100 at (32, 32, 4096, 128)
fp16 that took the template from 10.3 to 9.0 ms causal and 18.5 to 17.2 ms non-causal, with
128-key blocks (by do_bench, bench/results/h100_large_speed_studies.md). Elsewhere the loads go
through pointers and strides, as before.
"""
from __future__ import annotations

from codegen.extern.epilogue import (TileSpace, dot_parameters, jit_source, launch_lines, launcher_start,
                                      store_lines, var)

SPACE = TileSpace(
    suffixes=["b", "h", "m", "d"],
    index=["off_b", "off_h", "offs_m[:, None]", "offs_d[None, :]"],
    masks=[None, None, "mask_m[:, None]", "mask_d[None, :]"],
)

HELPERS = '''
def attention_operands(q, k, v):
    """(batch, heads, length, head_dim) views of SDPA's operands; 3-D inputs get one head."""
    if q.dim() == 3:
        return q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
    return q, k, v


def key_value_sources(k, v, block_n, tma):
    """What the kernel reads keys and values from: with `tma` (the config's choice), tensor
    descriptors over their (batch * heads * S, head_dim) rows when the GPU has a TMA (Hopper or
    later; CPU tensors only reach here under the interpreter, which emulates it), the tensors are
    contiguous and 16-byte aligned, S is whole key blocks (a descriptor over the flattened rows
    would read the next head's keys past S), the head dim a power of two of 16 bytes or more and
    the row count within the descriptor's 32-bit coordinates.
    Else the tensors themselves, read through their strides. Returns (k_src, v_src, tma)."""
    s, head_dim = k.shape[2], k.shape[3]
    usable = (tma and k.is_contiguous() and v.is_contiguous() and s % block_n == 0
              and head_dim & (head_dim - 1) == 0 and head_dim * k.element_size() >= 16
              and k.data_ptr() % 16 == 0 and v.data_ptr() % 16 == 0 and k.numel() // head_dim < 2**31
              and (not k.is_cuda or torch.cuda.get_device_capability(k.device)[0] >= 9))
    if not usable:
        return k, v, False
    block = [block_n, head_dim]
    return (TensorDescriptor.from_tensor(k.view(-1, head_dim), block),
            TensorDescriptor.from_tensor(v.view(-1, head_dim), block), True)
'''


def emit(g) -> tuple[str, str]:
    ep = g.epilogue
    kname = f"{g.kernel_name}_kernel"
    out_params = [f"{var(o.name)}_out_ptr" for o in g.outputs]
    fp32 = g.input_dtype == "float32"
    params = ["q_ptr", "k_src", "v_src"] + out_params + ep.stride_params(SPACE) + [
        "stride_qb", "stride_qh", "stride_qm", "stride_qd",
        "stride_kb", "stride_kh", "stride_kn", "stride_kd",
        "stride_vb", "stride_vh", "stride_vn", "stride_vd",
        "stride_ob", "stride_oh", "stride_om", "stride_od",
        "H", "L", "S", "sm_scale",
        "HEAD_DIM: tl.constexpr", "BLOCK_D: tl.constexpr",
        "BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr", "IS_CAUSAL: tl.constexpr",
        "EVEN_N: tl.constexpr", "EVEN_D: tl.constexpr", "TMA: tl.constexpr",
    ]
    dot_kw, half = dot_parameters(g, params)
    widen = (["if WIDEN_DOT:  # CPU interpreter only: its bf16 dot is wrong, its fp16 dot slow",
              "    q = q.to(tl.float32)"] if half else [])
    block = f"{g.kernel_name}_key_blocks"
    block_consts = "BLOCK_N=BLOCK_N, EVEN_N=EVEN_N, EVEN_D=EVEN_D, TMA=TMA" + (
        ", INPUT_PRECISION=INPUT_PRECISION" if fp32 else "") + (", WIDEN_DOT=WIDEN_DOT" if half else "")
    lines = [
        "# Causal programs own different amounts of work: launch the longest (last rows) first.",
        "if IS_CAUSAL:",
        "    start_m = tl.num_programs(0) - 1 - tl.program_id(0)",
        "else:",
        "    start_m = tl.program_id(0)",
        "off_bh = tl.program_id(1)",
        "off_b = (off_bh // H).to(tl.int64)",
        "off_h = (off_bh % H).to(tl.int64)",
        "q_ptr += off_b * stride_qb + off_h * stride_qh",
        "# TMA: k_src and v_src are descriptors over all heads' rows; this head's start at kv_row0.",
        "kv_row0 = off_bh * S",
        "if not TMA:",
        "    k_src += off_b * stride_kb + off_h * stride_kh",
        "    v_src += off_b * stride_vb + off_h * stride_vh",
        "",
        "offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)",
        "offs_d = tl.arange(0, BLOCK_D)",
        "mask_m = offs_m < L",
        "# A power-of-two head dim fills its block: no head-dim mask, so tiles load unpredicated.",
        "mask_d = offs_d < HEAD_DIM",
        "q = tl.load(q_ptr + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,",
        "            mask=mask_m[:, None] & mask_d[None, :], other=0.0)",
    ] + widen + [
        "",
        "# exp2 is cheaper than exp: fold log2(e) into the softmax scale once.",
        "qk_scale = sm_scale * 1.4426950408889634",
        "m_i = tl.full((BLOCK_M,), float('-inf'), dtype=tl.float32)",
        "l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)",
        "acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)",
        "",
        "if IS_CAUSAL:",
        "    # Key blocks wholly below the diagonal need no mask; the diagonal band does; later",
        "    # keys are all masked, so the loop stops there.",
        "    hi = tl.minimum((start_m + 1) * BLOCK_M, S)",
        "    band = tl.minimum(start_m * BLOCK_M // BLOCK_N * BLOCK_N, hi)",
        f"    acc, l_i, m_i = {block}(acc, l_i, m_i, q, k_src, v_src, kv_row0, stride_kn, stride_kd, stride_vn, stride_vd,",
        f"                    offs_m, offs_d, mask_d, S, 0, band, qk_scale, {block_consts}, CAUSAL_MASK=False)",
        f"    acc, l_i, m_i = {block}(acc, l_i, m_i, q, k_src, v_src, kv_row0, stride_kn, stride_kd, stride_vn, stride_vd,",
        f"                    offs_m, offs_d, mask_d, S, band, hi, qk_scale, {block_consts}, CAUSAL_MASK=True)",
        "else:",
        f"    acc, l_i, m_i = {block}(acc, l_i, m_i, q, k_src, v_src, kv_row0, stride_kn, stride_kd, stride_vn, stride_vd,",
        f"                    offs_m, offs_d, mask_d, S, 0, S, qk_scale, {block_consts}, CAUSAL_MASK=False)",
        "acc = acc / l_i[:, None]",
        "",
    ]
    if ep.members or ep.operands:
        lines.append("# Fused epilogue on the normalised fp32 output.")
    lines += [ep.operand_load(op, SPACE) for op in ep.operands.values()]
    lines += [line for _, line in ep.expressions(SPACE)]
    lines.append("o_offsets = (off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_om"
                 " + offs_d[None, :] * stride_od)")
    lines += store_lines(g, ep, "o_offsets", "mask_m[:, None] & mask_d[None, :]")
    kernel = _key_blocks_source(block, fp32, half, dot_kw) + "\n\n" + jit_source(kname, params, g.doc, lines)

    cfg = f"{g.kernel_name.upper()}_CONFIG"
    scale = "1.0 / math.sqrt(head_dim)" if g.scale is None else repr(float(g.scale))
    setup = [f"    out_shape = {g.q_expr}.shape",
             f"    q, k, v = attention_operands({g.q_expr}, {g.k_expr}, {g.v_expr})",
             "    batch, heads, length, head_dim = q.shape",
             f'    k_src, v_src, tma = key_value_sources(k, v, {cfg}["BLOCK_N"], {cfg}["TMA"])']
    L, prepared, outs = launcher_start(g, setup, "{0}.expand(out_shape).reshape(q.shape)", "q.shape", "q.device")
    L.append(f'    grid = (cdiv(length, {cfg}["BLOCK_M"]), batch * heads)')
    call = (["q", "k_src", "v_src"] + outs + ep.stride_args(prepared, SPACE)
            + ["*q.stride()", "*k.stride()", "*v.stride()", f"*{outs[0]}.stride()",
               "heads", "length", "k.shape[2]", scale,
               "HEAD_DIM=head_dim", "BLOCK_D=triton.next_power_of_2(head_dim)",
               f"IS_CAUSAL={g.causal}", f'EVEN_N=k.shape[2] % {cfg}["BLOCK_N"] == 0',
               "EVEN_D=head_dim == triton.next_power_of_2(head_dim)"]
            # the config's TMA asks for descriptors; `tma` says whether these operands allow them
            + (["WIDEN_DOT=INTERPRETED"] if half else []) + [f'**{{**{cfg}, "TMA": tma}}'])
    L += launch_lines(kname, call, [f"{o}.view(out_shape)" for o in outs])
    return kernel, "\n".join(L) + "\n"


def _key_blocks_source(name: str, fp32: bool, half: bool, dot_kw: str) -> str:
    """A jit helper: the online-softmax loop over key blocks [lo, hi), masked only where needed."""
    extra = (", INPUT_PRECISION: tl.constexpr" if fp32 else "") + (", WIDEN_DOT: tl.constexpr" if half else "")
    widen = ("        if WIDEN_DOT:  # CPU interpreter only\n"
             "            k_tile = k_tile.to(tl.float32)\n"
             "            v_tile = v_tile.to(tl.float32)\n") if half else ""
    return f'''@triton.jit
def {name}(acc, l_i, m_i, q, k_src, v_src, kv_row0, stride_kn, stride_kd, stride_vn, stride_vd,
        offs_m, offs_d, mask_d, S, lo, hi, qk_scale,
        BLOCK_N: tl.constexpr, EVEN_N: tl.constexpr, EVEN_D: tl.constexpr, CAUSAL_MASK: tl.constexpr,
        TMA: tl.constexpr{extra}):
    """Stream key/value blocks [lo, hi) through the online softmax of one query block."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if TMA:  # whole [BLOCK_N, HEAD_DIM] tiles by the tensor memory accelerator
            k_tile = k_src.load([kv_row0 + start_n, 0]).T
            v_tile = v_src.load([kv_row0 + start_n, 0])
        else:
            k_ptrs = k_src + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd
            v_ptrs = v_src + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd
            if EVEN_N and EVEN_D:  # every key block is whole
                k_tile = tl.load(k_ptrs)
                v_tile = tl.load(v_ptrs)
            elif EVEN_N:
                k_tile = tl.load(k_ptrs, mask=mask_d[:, None], other=0.0)
                v_tile = tl.load(v_ptrs, mask=mask_d[None, :], other=0.0)
            else:
                mask_n = cols < S
                k_tile = tl.load(k_ptrs, mask=mask_n[None, :] & mask_d[:, None], other=0.0)
                v_tile = tl.load(v_ptrs, mask=mask_n[:, None] & mask_d[None, :], other=0.0)
{widen}        qk = tl.dot(q, k_tile{dot_kw})
        if CAUSAL_MASK:  # the diagonal band: query i sees keys 0..i
            qk = tl.where(offs_m[:, None] >= cols[None, :], qk, float("-inf"))
        if not EVEN_N:
            qk = tl.where((cols < S)[None, :], qk, float("-inf"))
        # Online softmax: rescale what was accumulated so far to the new running max.
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v_tile.dtype), v_tile{dot_kw})
        m_i = m_new
    return acc, l_i, m_i
'''
