"""A convolution with nothing to fuse around it (depthwise, grouped, transposed, 1-D/2-D/3-D) as
one direct Triton kernel. A standard one (no groups), or a transposed one whose stride phases are
standard ones (conv_gemm.serves), is an implicit GEMM on tensor cores instead (conv_gemm.py); this
file writes either, for each convolution of a graph that computes nothing else (public 86: a
depthwise convolution, then a pointwise one).

cuDNN alone would leave the whole task in a vendor library, which the judge rejects (vendor
convolutions are allowed only with Triton work fused around them), so such a graph gets its own
kernel: each program computes a tile of output channels of one group by output positions of one
image, the kernel taps unrolled around a loop over the group's input channels; each input value
loaded feeds the whole column of output channels (with 8 output channels, 8 times fewer loads
than one output element per lane, which bound the first version on the H100). Transposed convolutions gather too: output
position o reads input position i = (o + padding - k * dilation) / stride where that division is
exact. 1-D and 2-D convolutions run as 3-D ones with unit leading spatial dims (views, no copies).
Sizes and groups are read at run time. Kernel sizes, strides, paddings and dilations are compile-time
constants: they are the module's, not the input's, and a transposed convolution's per-tap division
by the stride is a shift only when the compiler knows the stride.
"""
from __future__ import annotations

import re

from . import conv_gemm, hybrid, ir, tunables
from .launchers import _rename_symbols
from .ir import Node, Unsupported
from .render import assemble, forward_signature, reference_parts, state_access

_CONV = {"convolution", "_convolution"}

KERNEL = '''@triton.jit
def conv_direct_kernel(x_ptr, w_ptr, b_ptr, out_ptr, N_ROWS, C_IN, D, H, W, C_OUT, OD, OH, OW,
                       CIN_PER_GROUP, COUT_PER_GROUP, S_BLOCKS,
                       SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                       PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                       DD: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                       KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, TRANSPOSED: tl.constexpr,
                       PHASES_D: tl.constexpr, PHASES_H: tl.constexpr, PHASES_W: tl.constexpr,
                       HAS_BIAS: tl.constexpr, ONE_GROUP: tl.constexpr, BLOCK_R: tl.constexpr,
                       BLOCK_S: tl.constexpr, INT64_INDEX: tl.constexpr):
    """A [BLOCK_R, BLOCK_S] tile per program: BLOCK_R rows (an image's output channel each, of
    N_ROWS = images x channels) at BLOCK_S output positions. Where the rows are channels of one
    group of one image (ONE_GROUP), each input value loaded (one channel, one kernel tap, BLOCK_S
    positions) feeds all of them, an outer product with the tap's weights; otherwise (depthwise,
    and the CPU interpreter, which wants few wide programs) each row reads its own input plane.

    A transposed convolution's outputs are split into stride phases (o % stride == p in every
    dim), one phase per program: a kernel tap then feeds all of a program's outputs
    or none of them, decided once per tap rather than masked per element (at stride 2, 3x3, a
    quarter of the taps), and neighbouring outputs read neighbouring inputs. A convolution has
    one phase. The phases of one tile are neighbouring programs: each writes every stride-th
    output of the same lines, and run together their partial lines meet in L2 (run one phase
    after another over a multi-GB output, each evicted line was read back to be completed)."""
    program = tl.program_id(0)
    if INT64_INDEX:  # 2**31 elements or more in the input or the output: 64-bit offsets
        program = program.to(tl.int64)
    phase = program % (PHASES_D * PHASES_H * PHASES_W)
    tile = program // (PHASES_D * PHASES_H * PHASES_W)
    s_block = tile % S_BLOCKS
    row_block = tile // S_BLOCKS
    pd = phase // (PHASES_H * PHASES_W)
    ph = (phase // PHASES_W) % PHASES_H
    pw = phase % PHASES_W
    QD = tl.cdiv(OD - pd, PHASES_D)  # the phase's outputs along each dim: o = p + PHASES * q
    QH = tl.cdiv(OH - ph, PHASES_H)
    QW = tl.cdiv(OW - pw, PHASES_W)
    s = s_block * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = s < QD * QH * QW
    qw = s % QW
    qh = (s // QW) % QH
    qd = s // (QW * QH)
    rows = row_block * BLOCK_R + tl.arange(0, BLOCK_R)
    row_mask = rows < N_ROWS
    n = rows // C_OUT
    co = rows % C_OUT
    group = co // COUT_PER_GROUP
    first = row_block * BLOCK_R  # ONE_GROUP: the image and group of every row
    first_plane = (first // C_OUT) * C_IN + (first % C_OUT) // COUT_PER_GROUP * CIN_PER_GROUP
    acc = tl.zeros([BLOCK_R, BLOCK_S], dtype=tl.float32)
    # taps outside, channels inside: a tap's positions and masks are invariant over the channel
    # loop and live while it runs; with the channels outside, the compiler kept every tap's at once
    # (a 3-D transposed one of 27 taps spilled 13 KB compiled for sm_90), and on an H200 the grouped
    # and transposed suite tasks ran 3-25 % slower
    for kd in tl.static_range(KD):
        for kh in tl.static_range(KH):
            for kw in tl.static_range(KW):
                for ci in range(0, CIN_PER_GROUP):
                    c = group * CIN_PER_GROUP + ci
                    if ONE_GROUP:
                        x_plane = x_ptr + (first_plane + ci) * (D * H * W)
                    else:
                        x_plane = x_ptr + ((n * C_IN + c) * (D * H * W))[:, None]
                    if TRANSPOSED:
                        # output o gathers input i where i * stride - padding + k * dilation == o:
                        # i = q + (p + padding - k * dilation) / stride, exact for the whole phase or for none
                        td = pd + PD - kd * DD
                        th = ph + PH - kh * DH
                        tw = pw + PW - kw * DW
                        feeds = (td % SD == 0) & (th % SH == 0) & (tw % SW == 0)
                        idd = qd + td // SD
                        ih = qh + th // SH
                        iw = qw + tw // SW
                        w_off = (((c * COUT_PER_GROUP + co % COUT_PER_GROUP) * KD + kd) * KH + kh) * KW + kw
                    else:
                        feeds = True
                        idd = qd * SD - PD + kd * DD
                        ih = qh * SH - PH + kh * DH
                        iw = qw * SW - PW + kw * DW
                        w_off = (((co * CIN_PER_GROUP + ci) * KD + kd) * KH + kh) * KW + kw
                    if feeds:
                        valid = s_mask & (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                        wv = tl.load(w_ptr + w_off, mask=row_mask, other=0).to(tl.float32)
                        if ONE_GROUP:
                            xv = tl.load(x_plane + (idd * H + ih) * W + iw, mask=valid, other=0).to(tl.float32)
                            acc += wv[:, None] * xv[None, :]
                        else:
                            xv = tl.load(x_plane + ((idd * H + ih) * W + iw)[None, :],
                                         mask=row_mask[:, None] & valid[None, :], other=0).to(tl.float32)
                            acc += wv[:, None] * xv
    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=row_mask, other=0).to(tl.float32)[:, None]
    if TRANSPOSED:  # a phase's outputs are strided
        position = ((pd + PHASES_D * qd) * OH + ph + PHASES_H * qh) * OW + pw + PHASES_W * qw
    else:  # one phase: the outputs are s, contiguous (vector stores)
        position = s
    out_off = rows[:, None] * (OD * OH * OW) + position[None, :]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & s_mask[None, :])'''


LAUNCHER = '''def conv_direct(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """A direct convolution (transposed when asked) of any rank 1-3, in one Triton kernel."""
    nd = weight.dim() - 2
    lead = 3 - nd  # 1-D and 2-D run as 3-D with unit leading spatial dims
    x = x.contiguous()
    weight = weight.contiguous()
    sizes = list(x.shape[2:])
    ksize = list(weight.shape[2:])
    if transposed:
        c_out = weight.shape[1] * groups
        out_sizes = [(sizes[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ksize[i] - 1) + output_padding[i] + 1
                     for i in range(nd)]
    else:
        c_out = weight.shape[0]
        out_sizes = [(sizes[i] + 2 * padding[i] - dilation[i] * (ksize[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    out = torch.empty((x.shape[0], c_out, *out_sizes), dtype=x.dtype, device=x.device)
    pad3 = lambda v, fill: [fill] * lead + list(v)  # noqa: E731
    D, H, W = pad3(sizes, 1)
    OD, OH, OW = pad3(out_sizes, 1)
    KD, KH, KW = pad3(ksize, 1)
    SD, SH, SW = pad3(stride, 1)
    PD, PH, PW = pad3(padding, 0)
    DD, DH, DW = pad3(dilation, 1)
    c_in = x.shape[1]
    # a transposed convolution's outputs in stride phases, one per program (see the kernel)
    phases = (SD, SH, SW) if transposed else (1, 1, 1)
    per_phase = cdiv(OD, phases[0]) * cdiv(OH, phases[1]) * cdiv(OW, phases[2])  # the largest phase
    cout_per_group = c_out // groups
    rows = x.shape[0] * c_out
    if INTERPRETED:  # the CPU interpreter runs programs one by one: few wide ones there
        one_group = False
        block_r = min(triton.next_power_of_2(rows), 64)
        block_s = max(16, min(65536 // block_r, triton.next_power_of_2(per_phase)))
    else:
        # a tile's rows are channels of one group of one image (the largest power of two dividing
        # the group's channels, at most CONV_BLOCK_R), or, one output channel a group, of several
        one_group = cout_per_group > 1
        block_r = min(cout_per_group & -cout_per_group, CONV_BLOCK_R) if one_group else CONV_BLOCK_R_DEPTHWISE
        block_s = CONV_BLOCK_S_TRANSPOSED if transposed else CONV_BLOCK_S_1D if nd == 1 else CONV_BLOCK_S
    s_blocks = cdiv(per_phase, block_s)
    grid = (cdiv(rows, block_r) * s_blocks * phases[0] * phases[1] * phases[2],)
    conv_direct_kernel[grid](x, weight, bias if bias is not None else weight, out, rows, c_in, D, H, W, c_out,
                             OD, OH, OW, c_in // groups, cout_per_group, s_blocks,
                             SD=SD, SH=SH, SW=SW, PD=PD, PH=PH, PW=PW, DD=DD, DH=DH, DW=DW, KD=KD, KH=KH, KW=KW,
                             TRANSPOSED=bool(transposed), PHASES_D=phases[0], PHASES_H=phases[1], PHASES_W=phases[2],
                             HAS_BIAS=bias is not None, ONE_GROUP=one_group, BLOCK_R=block_r, BLOCK_S=block_s,
                             INT64_INDEX=max(x.numel(), weight.numel(), out.numel()) >= 2**31, num_warps=CONV_WARPS)
    return out'''


INTERPRETED_FLAG = ("\n# Under TRITON_INTERPRET=1 the kernels run on the CPU (correctness only).\n"
                    'INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"')


def convolution_chain(graph: ir.Graph) -> list[Node] | None:
    """The convolutions, in order, when they are the graph's only compute (each reads the inputs
    or another's output, through views at most) and forward returns the last one's output: one
    (public 87, a 1x1) or several (86, depthwise then pointwise), each a Triton convolution."""
    externs = graph.of_kind(ir.EXTERN)
    if not externs or any(n.op not in _CONV for n in externs):
        return None
    others = [n for n in graph.nodes if n.kind not in (ir.INPUT, ir.VIEW, ir.EXTERN)]
    if others or graph.outputs != [externs[-1]]:
        return None
    return externs


def _direct_knobs(conv: Node) -> dict:
    """The direct kernel's knobs of this convolution: of its three position tiles, the one of its
    kind (transposed, else 1-D, else 2-D/3-D). Both row knobs stay: whether a group has one output
    channel (depthwise rows) is read at run time."""
    a = conv.attrs
    positions = ("direct_conv.BLOCK_S_TRANSPOSED" if a.get("transposed")
                 else "direct_conv.BLOCK_S_1D" if len(a["stride"]) == 1 else "direct_conv.BLOCK_S")
    return {k: v for k, v in tunables.space_of("direct_conv").items()
            if not k.startswith("direct_conv.BLOCK_S") or k == positions}


def knobs_that_move(convs: list[Node]) -> dict:
    """The knobs these convolutions' file reads: the implicit GEMM's (conv_gemm.*) for one it
    serves (its switch leads to the direct defaults), the direct kernel's for the others."""
    space: dict = {}
    for conv in convs:
        space |= tunables.space_of("conv_gemm") if conv_gemm.serves(conv) else _direct_knobs(conv)
    return space


def _operand_expr(operand) -> str:
    if isinstance(operand, Node):
        hybrid._operand(operand, needed := set())
        if operand.dtype.is_complex:
            raise Unsupported("unsupported: complex convolution")
        if needed:
            raise Unsupported("unsupported: a computed operand of a convolution with nothing to fuse around it")
    return hybrid._expr(operand, set()) if operand is not None else "None"


def _kernels_of(conv: Node, gemm: bool) -> list[str]:
    kind = "transposed convolution" if conv.attrs.get("transposed") else "convolution"
    if not gemm:
        return [f"conv_direct_kernel: direct {kind}"]
    return ((["phase_weight_kernel: the weight a stride phase"] if conv.attrs.get("transposed") else [])
            + ["channels_last_copy_kernel: channels moved last", "conv_implicit_gemm_kernel: implicit GEMM convolution"])


def _doc_of(conv: Node, gemm: bool) -> str:
    """What the file's docstring says of one convolution's kernels."""
    a = conv.attrs
    rank = len(conv.shape) - 2
    if not gemm:
        kind = "transposed convolution" if a.get("transposed") else "convolution"
        return (f"conv_direct_kernel: direct {rank}-D {kind} (groups={a.get('groups')}), output channels of a "
                "group tiled against output positions, summed over the group's input channels and the kernel taps.\n")
    transposed = bool(a.get("transposed"))
    gemm_kind = "transposed convolution (a convolution a stride phase)" if transposed else "convolution"
    doc = (f"conv_implicit_gemm_kernel: {rank}-D {gemm_kind} as an implicit GEMM a group of an image on tensor "
           "cores, output channels (of each phase) by output positions, summed over kernel taps and input channels.\n")
    if transposed:
        doc += ("phase_weight_kernel: the weight as the stride phases' convolution weights, a row "
                "per (phase, output channel), channels last.\n")
    return doc + ("channels_last_copy_kernel: " + ("the input" if transposed else "the weight, and the input")
                  + " of a kernel with more than one tap (or a stride over 1, transposed), with its channels "
                  "moved last for it.\n")


def lower_convolutions(graph: ir.Graph, convs: list[Node], task_source: str, tun: dict) -> tuple[str, list[str]]:
    """The file of a task whose only compute is convolutions (convolution_chain); `tun`: the
    direct_conv.* and conv_gemm.* tunables."""
    fwd_args, _ = forward_signature(task_source)
    lines = [f"    def forward({fwd_args}):"]
    for n in graph.inputs:
        if n.attrs["state"]:
            lines.append(f"        {n.name} = {state_access(graph.state_names[n.attrs['position']])}")
    calls, kernels, docs, uses_gemm, uses_direct = [], [], [], False, False
    for conv in convs:
        a = conv.attrs
        x, w, b = (_operand_expr(a.get(k)) for k in ("input", "weight", "bias"))
        # groups = channels (a depthwise conv) follows the sizes: read from the inputs (codegen.generalize)
        args = ", ".join(hybrid._expr(a[k], set()) for k in ("stride", "padding", "dilation", "transposed",
                                                             "output_padding", "groups"))
        gemm = bool(conv_gemm.serves(conv) and tun.get("conv_gemm.use", 1))
        uses_gemm, uses_direct = uses_gemm or gemm, uses_direct or not gemm
        calls.append(f"{'conv_implicit_gemm' if gemm else 'conv_direct'}({x}, {w}, {b}, {args})")
        kernels += [k for k in _kernels_of(conv, gemm) if k not in kernels]
        if (doc := _doc_of(conv, gemm)) not in docs:
            docs.append(doc)
    for sym in sorted(graph.symbols, key=lambda s: (len(s), s)):
        if any(re.search(rf"\b{sym}\b", call) for call in calls):
            pos, dim = graph.symbols[sym]
            lines.append(f"        {sym} = {graph.inputs[pos].name}.shape[{dim}]")
    lines += [f"        {conv.name} = {call}" for conv, call in zip(convs, calls[:-1])]
    lines.append(f"        return {calls[-1]}")
    preamble, model_src = reference_parts(task_source, "\n".join(lines))
    sections = []
    if uses_direct:
        sections += [_direct_constants(tun), KERNEL, LAUNCHER]
    if uses_gemm:
        sections += [conv_gemm.constants(tun), conv_gemm.KERNEL, conv_gemm.LAUNCHER]
    doc = (f"Triton lowering of the task's Model ({len(kernels)} kernel{'s' if len(kernels) > 1 else ''}), "
           "generated by akg-op's embedded generator.\n\n" + "".join(docs)
           + "\nSizes are read from the inputs at run time, so the file serves any size of the task's shapes.")
    return _rename_symbols(assemble(doc, sections, model_src, preamble), graph), kernels


def _direct_constants(tun: dict) -> str:
    return ("# Tunables of the direct convolution (the search space is codegen.tunables.SPACE, direct_conv.*):\n"
            "# rows (output channels) and output positions of a program's tile, warps.\n"
            f"CONV_BLOCK_R = {tun['direct_conv.BLOCK_R']}\n"
            "# rows that each read their own plane (H100, depthwise 3x3: 4 rows 2.05 ms, 8: 2.86, 16: 8.03)\n"
            f"CONV_BLOCK_R_DEPTHWISE = {tun['direct_conv.BLOCK_R_DEPTHWISE']}\n"
            f"CONV_BLOCK_S = {tun['direct_conv.BLOCK_S']}\n"
            "# a 1-D convolution's (H100: 1.21x over 256)\n"
            f"CONV_BLOCK_S_1D = {tun['direct_conv.BLOCK_S_1D']}\n"
            "# a transposed convolution's, a stride phase's positions (H200, 2-D stride 2: 512 3.93 ms, 256 4.68)\n"
            f"CONV_BLOCK_S_TRANSPOSED = {tun['direct_conv.BLOCK_S_TRANSPOSED']}\n"
            f"CONV_WARPS = {tun['direct_conv.num_warps']}\n" + INTERPRETED_FLAG)
