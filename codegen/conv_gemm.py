"""A lone convolution without groups (the standard one: every output channel reads every input
channel) as an implicit GEMM on tensor cores.

The direct kernel (conv_direct.py) multiplies on CUDA cores, an outer product of a tap's weights
and inputs at a time: right for depthwise and grouped convolutions, whose channels read few
inputs, but a standard 2-D convolution at benchmark size, (16, 16, 1024, 1024) -> 128 channels,
3x3, ran at 64.5 ms on an H200 against cuDNN's 6.7 (0.10x). Here each image is one GEMM: rows its
output positions, columns the output channels, summed over input channels x kernel taps, a tap
and BLOCK_K channels at a time (an image's 3 channels: BLOCK_K (channel, tap) pairs at a time),
with `tl.dot` on tensor cores (fp32 inputs as three TF32 products,
about fp32's accuracy, unless the task's tolerance is asked to take plain TF32). Nothing is
copied: the input is read in place (NCHW), its positions along the tile's rows, and the weight
as it is. 1-D and 2-D convolutions run as 3-D ones with unit leading spatial dims, as in the
direct kernel.
"""
from __future__ import annotations

from .ir import Node

KERNEL = '''@triton.jit
def accumulate_product(acc, a, b, FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """acc + a @ b on tensor cores (fp32 operands at INPUT_PRECISION)."""
    if FP32:
        return tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
    return tl.dot(a, b, acc)


@triton.jit
def conv_implicit_gemm_kernel(x_ptr, w_ptr, b_ptr, out_ptr, C_IN, D, H, W, C_OUT, OD, OH, OW, CO_BLOCKS,
                              SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                              PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                              DD: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                              KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                              FEW_CHANNELS: tl.constexpr, FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                              INT64_INDEX: tl.constexpr):
    """out[n, co, p] = bias[co] + sum over c, k of x[n, c, p * stride - padding + k * dilation] * w[co, c, k]:
    a [BLOCK_M positions, BLOCK_N output channels] tile of image n per program. The reduction runs
    as one loop of steps, so the loads of the next steps are in flight (num_stages) while the
    tensor cores work on this one: a step is one tap and BLOCK_K input channels, or, with fewer
    channels than the smallest step (FEW_CHANNELS: an image's 3), BLOCK_K of the (channel, tap)
    pairs in the weight's own order, so that few of a step's products are of padding zeros."""
    program = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)  # the image's base offset: whole tensors may pass 2**31 elements
    # the output-channel tiles of one position tile are neighbours: its inputs come from DRAM once
    co_block = program % CO_BLOCKS
    p_block = program // CO_BLOCKS
    positions = OD * OH * OW
    p = p_block * BLOCK_M + tl.arange(0, BLOCK_M)
    co = co_block * BLOCK_N + tl.arange(0, BLOCK_N)
    ck = tl.arange(0, BLOCK_K)
    if INT64_INDEX:  # one image of the input or the output holds 2**31 elements or more
        p = p.to(tl.int64)
        co = co.to(tl.int64)
        ck = ck.to(tl.int64)
    p_mask = p < positions
    co_mask = co < C_OUT
    ow = p % OW
    oh = (p // OW) % OH
    od = p // (OW * OH)
    plane = D * H * W
    x_image = x_ptr + n * C_IN * plane
    taps = KD * KH * KW
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if FEW_CHANNELS:
        pairs = C_IN * taps
        for step in range(0, tl.cdiv(pairs, BLOCK_K)):
            r = step * BLOCK_K + ck
            r_mask = r < pairs
            c = r // taps
            tap = r % taps
            kw = tap % KW
            kh = (tap // KW) % KH
            kd = tap // (KW * KH)
            idd = od[:, None] * SD - PD + (kd * DD)[None, :]
            ih = oh[:, None] * SH - PH + (kh * DH)[None, :]
            iw = ow[:, None] * SW - PW + (kw * DW)[None, :]
            inside = (p_mask[:, None] & r_mask[None, :] & (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H)
                      & (iw >= 0) & (iw < W))
            a = tl.load(x_image + c[None, :] * plane + (idd * H + ih) * W + iw, mask=inside, other=0)
            b = tl.load(w_ptr + co[None, :] * pairs + r[:, None], mask=r_mask[:, None] & co_mask[None, :], other=0)
            acc = accumulate_product(acc, a, b, FP32, INPUT_PRECISION)
    else:
        c_blocks = tl.cdiv(C_IN, BLOCK_K)
        for step in range(0, taps * c_blocks):
            tap = step // c_blocks
            c = (step % c_blocks) * BLOCK_K + ck
            kw = tap % KW
            kh = (tap // KW) % KH
            kd = tap // (KW * KH)
            idd = od * SD - PD + kd * DD
            ih = oh * SH - PH + kh * DH
            iw = ow * SW - PW + kw * DW
            inside = p_mask & (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            c_mask = c < C_IN
            a = tl.load(x_image + c[None, :] * plane + ((idd * H + ih) * W + iw)[:, None],
                        mask=inside[:, None] & c_mask[None, :], other=0)
            b = tl.load(w_ptr + co[None, :] * (C_IN * taps) + c[:, None] * taps + tap,
                        mask=c_mask[:, None] & co_mask[None, :], other=0)
            acc = accumulate_product(acc, a, b, FP32, INPUT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_mask, other=0).to(tl.float32)[None, :]
    out_image = out_ptr + n * C_OUT * positions
    tl.store(out_image + co[None, :] * positions + p[:, None], acc.to(out_ptr.dtype.element_ty),
             mask=p_mask[:, None] & co_mask[None, :])'''


LAUNCHER = '''def conv_implicit_gemm(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """A convolution without groups, of any rank 1-3, as one implicit GEMM an image (tensor cores)."""
    if transposed or groups != 1:
        raise ValueError("conv_implicit_gemm serves convolutions without groups, not transposed")
    nd = weight.dim() - 2
    lead = 3 - nd  # 1-D and 2-D run as 3-D with unit leading spatial dims
    x = x.contiguous()
    weight = weight.contiguous()
    sizes = list(x.shape[2:])
    ksize = list(weight.shape[2:])
    c_out, c_in = weight.shape[0], x.shape[1]
    out_sizes = [(sizes[i] + 2 * padding[i] - dilation[i] * (ksize[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    out = torch.empty((x.shape[0], c_out, *out_sizes), dtype=x.dtype, device=x.device)
    pad3 = lambda v, fill: [fill] * lead + list(v)  # noqa: E731
    D, H, W = pad3(sizes, 1)
    OD, OH, OW = pad3(out_sizes, 1)
    # tiles no wider than what they hold, and at least 16 (the tensor cores' smallest step); with
    # fewer input channels than that, a step holds (channel, tap) pairs
    few_channels = c_in < 16
    block_n = max(16, min(CONV_GEMM_BLOCK_N, triton.next_power_of_2(c_out)))
    reduced = c_in * math.prod(ksize) if few_channels else c_in
    block_k = max(16, min(CONV_GEMM_BLOCK_K, triton.next_power_of_2(reduced)))
    co_blocks = cdiv(c_out, block_n)
    grid = (cdiv(OD * OH * OW, CONV_GEMM_BLOCK_M) * co_blocks, x.shape[0])
    per_image = max(c_in * D * H * W, c_out * OD * OH * OW)
    conv_implicit_gemm_kernel[grid](
        x, weight, bias if bias is not None else weight, out, c_in, D, H, W, c_out, OD, OH, OW, co_blocks,
        *pad3(stride, 1), *pad3(padding, 0), *pad3(dilation, 1), *pad3(ksize, 1),
        HAS_BIAS=bias is not None, FEW_CHANNELS=few_channels, FP32=x.dtype == torch.float32,
        INPUT_PRECISION=CONV_GEMM_INPUT_PRECISION,
        BLOCK_M=CONV_GEMM_BLOCK_M, BLOCK_N=block_n, BLOCK_K=block_k, INT64_INDEX=per_image >= 2**31,
        num_warps=CONV_GEMM_WARPS, num_stages=CONV_GEMM_STAGES)
    return out'''


def serves(conv: Node) -> bool:
    """A convolution without groups, not transposed: every output channel reads every input channel."""
    a = conv.attrs
    return not a.get("transposed") and a.get("groups") == 1


def constants(tun: dict) -> str:
    return ("# Tunables of the implicit GEMM (the search space is codegen.tunables.SPACE, conv_gemm.*):\n"
            "# output positions and output channels of a program's tile (channels: at most this many), input\n"
            "# channels a step, warps, steps in flight, and fp32's precision on the tensor cores\n"
            "# (\"tf32x3\": about fp32's accuracy; \"tf32\": faster, where the task's tolerance takes it; \"ieee\").\n"
            f"CONV_GEMM_BLOCK_M = {tun['conv_gemm.BLOCK_M']}\n"
            f"CONV_GEMM_BLOCK_N = {tun['conv_gemm.BLOCK_N']}\n"
            f"CONV_GEMM_BLOCK_K = {tun['conv_gemm.BLOCK_K']}\n"
            f"CONV_GEMM_WARPS = {tun['conv_gemm.num_warps']}\n"
            f"CONV_GEMM_STAGES = {tun['conv_gemm.num_stages']}\n"
            f"CONV_GEMM_INPUT_PRECISION = {tun['conv_gemm.INPUT_PRECISION']!r}\n")
