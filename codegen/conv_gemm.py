"""A lone convolution without groups (the standard one: every output channel reads every input
channel), or a transposed one of stride 1 (the standard one with its kernel flipped), as an
implicit GEMM on tensor cores.

The direct kernel (conv_direct.py) multiplies on CUDA cores, an outer product of a tap's weights
and inputs at a time: right for depthwise and grouped convolutions, whose channels read few
inputs, but a standard 2-D convolution at benchmark size, (16, 16, 1024, 1024) -> 128 channels,
3x3, ran at 64.5 ms on an H200 against cuDNN's 6.7 (0.10x). Here each image is one GEMM: rows the
output channels, columns its output positions (so a tile's stores run along positions, NCHW's
contiguous dim), summed over kernel taps x input channels, a tap and BLOCK_K channels at a time
(an image's 3 channels: BLOCK_K (tap, channel) pairs at a time), with `tl.dot`.

The tensor cores take fp32 operands as TF32 only from shared memory laid out along the reduction,
so a kernel with more than one tap reads a copy of its input with the channels last (one pass,
channels_last_copy_kernel), where a position's channels are one contiguous run; a 1x1 kernel's
GEMM reads NCHW in place. The weight is copied once a call to (output channel, tap, channel).

fp32 multiplies as the reference's convolution does, read at each call: in TF32 where PyTorch
runs it so on cuDNN (torch.backends.cudnn.allow_tf32, on by default), with the operands rounded
to nearest first as cuDNN rounds them (the tensor cores would drop the low bits: twice the error
on an H200; rounded, the output equals eager's bit for bit), and the judge holds the result to the
reference's own error; in exact fp32 for a 3-D convolution of fewer than 16 input channels, which
cuDNN ran so; in three TF32 products, about fp32's accuracy, where the flag is off and on the CPU. The knob can ask
for three products or exact fp32 everywhere. 1-D and 2-D convolutions run as 3-D ones with unit
leading spatial dims, as in the direct kernel.
"""
from __future__ import annotations

from .ir import Node

KERNEL = '''@triton.jit
def round_to_tf32(values):
    """fp32 values rounded to TF32's 10-bit mantissa, to nearest (ties away from zero), NaN kept."""
    bits = values.to(tl.uint32, bitcast=True)
    rounded = ((bits + 0x1000) >> 13 << 13).to(tl.float32, bitcast=True)
    return tl.where(values == values, rounded, values)


@triton.jit
def channels_last_copy_kernel(src_ptr, dst_ptr, C, S, src_stride_n, src_stride_c, FLIP_S: tl.constexpr,
                              ROUND_TF32: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                              INT64_INDEX: tl.constexpr):
    """dst[n, s, c] = src[n, c, s], or src[n, c, S - 1 - s] with FLIP_S, at the source strides given:
    channels moved last, rounded to TF32 where the GEMM multiplies so."""
    n = tl.program_id(1).to(tl.int64)
    s = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    if INT64_INDEX:
        s = s.to(tl.int64)
        c = c.to(tl.int64)
    mask = (c[:, None] < C) & (s[None, :] < S)
    source_s = S - 1 - s if FLIP_S else s
    values = tl.load(src_ptr + n * src_stride_n + c[:, None] * src_stride_c + source_s[None, :], mask=mask, other=0)
    if ROUND_TF32:
        values = round_to_tf32(values)
    tl.store(dst_ptr + n * C * S + s[None, :] * C + c[:, None], values, mask=mask)


@triton.jit
def accumulate_product(acc, a, b, FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """acc + a @ b on tensor cores (fp32 operands at INPUT_PRECISION)."""
    if FP32:
        return tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
    return tl.dot(a, b, acc)


@triton.jit
def conv_implicit_gemm_kernel(x_ptr, w_ptr, b_ptr, out_ptr, C_IN, D, H, W, C_OUT, OD, OH, OW, CO_BLOCKS,
                              x_stride_c, x_stride_position,
                              SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                              PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                              DD: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                              KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                              FEW_CHANNELS: tl.constexpr, ROUND_INPUT: tl.constexpr, FP32: tl.constexpr,
                              INPUT_PRECISION: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_P: tl.constexpr,
                              BLOCK_K: tl.constexpr, INT64_INDEX: tl.constexpr):
    """out[n, co, p] = bias[co] + sum over k, c of w[co, k, c] * x[n, c, p * stride - padding + k * dilation]:
    a [BLOCK_CO output channels, BLOCK_P positions] tile of image n per program, the weight as
    (output channel, tap, channel) and the input at the strides given (channels last, or NCHW for
    a 1x1 kernel). The reduction runs as one loop of steps, so the loads of the next steps are in
    flight (num_stages) while the tensor cores work on this one: a step is one tap and BLOCK_K
    input channels, or, with fewer channels than the smallest step (FEW_CHANNELS: an image's 3),
    BLOCK_K of the (tap, channel) pairs in the weight's order, so that few of a step's products
    are of padding zeros."""
    program = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)  # the image's base offset: whole tensors may pass 2**31 elements
    # the output-channel tiles of one position tile are neighbours: its inputs come from DRAM once
    co_block = program % CO_BLOCKS
    p_block = program // CO_BLOCKS
    positions = OD * OH * OW
    co = co_block * BLOCK_CO + tl.arange(0, BLOCK_CO)
    p = p_block * BLOCK_P + tl.arange(0, BLOCK_P)
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
    x_image = x_ptr + n * C_IN * D * H * W
    reduced = KD * KH * KW * C_IN
    acc = tl.zeros([BLOCK_CO, BLOCK_P], dtype=tl.float32)
    if FEW_CHANNELS:
        for step in range(0, tl.cdiv(reduced, BLOCK_K)):
            r = step * BLOCK_K + ck
            r_mask = r < reduced
            tap = r // C_IN
            c = r % C_IN
            kw = tap % KW
            kh = (tap // KW) % KH
            kd = tap // (KW * KH)
            idd = (kd * DD)[:, None] + od[None, :] * SD - PD
            ih = (kh * DH)[:, None] + oh[None, :] * SH - PH
            iw = (kw * DW)[:, None] + ow[None, :] * SW - PW
            inside = (r_mask[:, None] & p_mask[None, :] & (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H)
                      & (iw >= 0) & (iw < W))
            b = tl.load(x_image + c[:, None] * x_stride_c + ((idd * H + ih) * W + iw) * x_stride_position,
                        mask=inside, other=0)
            if ROUND_INPUT:
                b = round_to_tf32(b)
            a = tl.load(w_ptr + co[:, None] * reduced + r[None, :], mask=co_mask[:, None] & r_mask[None, :], other=0)
            acc = accumulate_product(acc, a, b, FP32, INPUT_PRECISION)
    else:
        c_blocks = tl.cdiv(C_IN, BLOCK_K)
        for step in range(0, KD * KH * KW * c_blocks):
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
            b = tl.load(x_image + c[:, None] * x_stride_c + ((idd * H + ih) * W + iw)[None, :] * x_stride_position,
                        mask=c_mask[:, None] & inside[None, :], other=0)
            if ROUND_INPUT:
                b = round_to_tf32(b)
            a = tl.load(w_ptr + co[:, None] * reduced + tap * C_IN + c[None, :],
                        mask=co_mask[:, None] & c_mask[None, :], other=0)
            acc = accumulate_product(acc, a, b, FP32, INPUT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_mask, other=0).to(tl.float32)[:, None]
    out_image = out_ptr + n * C_OUT * positions
    tl.store(out_image + co[:, None] * positions + p[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=co_mask[:, None] & p_mask[None, :])'''


LAUNCHER = '''def channels_last_copy(x, round_tf32, flipped_transpose=False):
    """x (N, C, *spatial) as (N, *spatial, C), contiguous; fp32 values rounded to TF32 if asked. With
    flipped_transpose, x is a transposed convolution's weight (C_in, C_out, *kernel), written as its
    convolution's: (C_out, *kernel flipped, C_in)."""
    x = x.contiguous()
    s = math.prod(x.shape[2:])
    if flipped_transpose:
        n, c, stride_n, stride_c = x.shape[1], x.shape[0], s, x.shape[1] * s
    else:
        n, c, stride_n, stride_c = x.shape[0], x.shape[1], x.shape[1] * s, s
    out = torch.empty((n, s, c), dtype=x.dtype, device=x.device)
    block_c = min(32, triton.next_power_of_2(c))
    block_s = 4096 // block_c
    grid = (cdiv(s, block_s), n, cdiv(c, block_c))
    channels_last_copy_kernel[grid](x, out, c, s, stride_n, stride_c, FLIP_S=flipped_transpose, ROUND_TF32=round_tf32,
                                    BLOCK_C=block_c, BLOCK_S=block_s, INT64_INDEX=c * s >= 2**31)
    return out


def conv_implicit_gemm(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """A convolution without groups, or a transposed one of stride 1, of any rank 1-3, as one
    implicit GEMM an image (tensor cores)."""
    if groups != 1 or (transposed and any(s != 1 for s in stride)):
        raise ValueError("conv_implicit_gemm serves convolutions without groups, transposed ones of stride 1")
    nd = weight.dim() - 2
    lead = 3 - nd  # 1-D and 2-D run as 3-D with unit leading spatial dims
    sizes = list(x.shape[2:])
    ksize = list(weight.shape[2:])
    c_out, c_in = weight.shape[1 if transposed else 0], x.shape[1]
    taps = math.prod(ksize)
    if transposed:
        # of stride 1: the convolution with the kernel flipped, over the input padded by
        # dilation * (kernel - 1) - padding before (less than none is a crop) and that plus
        # output_padding after (the kernel masks what lies past the input)
        out_sizes = [sizes[i] - 2 * padding[i] + dilation[i] * (ksize[i] - 1) + output_padding[i] for i in range(nd)]
        padding = [dilation[i] * (ksize[i] - 1) - padding[i] for i in range(nd)]
    else:
        out_sizes = [(sizes[i] + 2 * padding[i] - dilation[i] * (ksize[i] - 1) - 1) // stride[i] + 1
                     for i in range(nd)]
    out = torch.empty((x.shape[0], c_out, *out_sizes), dtype=x.dtype, device=x.device)
    # fewer input channels than a step's 16: a step holds (tap, channel) pairs
    few_channels = c_in < 16
    # "tf32": as the reference's own convolution. PyTorch runs it in TF32 on a GPU unless
    # torch.backends.cudnn.allow_tf32 is off, but cuDNN ran the 3-D ones of fewer than 16 input
    # channels in exact fp32 (H200, public 54, 59, 60, 66: errors of 1e-6 of the output's scale,
    # against TF32's 3e-4; a 2-D one, 50, in TF32, equal to ours bit for bit). Those multiply in
    # fp32 here too (3.8-9.8 ms against three TF32 products' 5.7-13.7); where the flag is off,
    # and on the CPU, three TF32 products, about fp32's accuracy (a meta tensor stands for a
    # GPU's: bench/hopper_compile.py). A guess that misses is a mismatch, which the embedded
    # generator's fix retries in three TF32 products.
    exact_like_cudnn = few_channels and nd == 3
    precision = CONV_GEMM_INPUT_PRECISION
    on_gpu = x.device.type != "cpu"
    if precision == "tf32" and not (on_gpu and torch.backends.cudnn.allow_tf32 and not exact_like_cudnn):
        precision = "ieee" if exact_like_cudnn else "tf32x3"
    tf32 = precision == "tf32" and x.dtype == torch.float32
    weight = channels_last_copy(weight, tf32, flipped_transpose=bool(transposed))  # (output channel, tap, channel)
    plane = math.prod(sizes)
    if taps > 1 or CONV_GEMM_CHANNELS_LAST:
        x = channels_last_copy(x, tf32)
        x_stride_c, x_stride_position, round_input = 1, c_in, False
    else:
        x = x.contiguous()
        x_stride_c, x_stride_position, round_input = plane, 1, tf32
    pad3 = lambda v, fill: [fill] * lead + list(v)  # noqa: E731
    D, H, W = pad3(sizes, 1)
    OD, OH, OW = pad3(out_sizes, 1)
    # tiles no wider than what they hold, and at least 16 (the tensor cores' smallest step); a
    # tile of half the output channels or fewer takes half the warps (H200, 64 channels: 2.41 ms
    # at 4 warps, 2.73 at 8)
    block_co = max(16, min(CONV_GEMM_BLOCK_CO, triton.next_power_of_2(c_out)))
    warps = CONV_GEMM_WARPS if 2 * block_co > CONV_GEMM_BLOCK_CO else max(4, CONV_GEMM_WARPS // 2)
    # a full tile over a reduction of 512 or more takes twice the positions (H200, 576 and 2240:
    # 4.19 -> 3.54 and 3.17 -> 2.55 ms; over 144 and 192 it was slower)
    block_p = CONV_GEMM_BLOCK_P * (2 if block_co == CONV_GEMM_BLOCK_CO and c_in * taps >= 512 else 1)
    block_k = max(16, min(CONV_GEMM_BLOCK_K, triton.next_power_of_2(c_in * taps if few_channels else c_in)))
    co_blocks = cdiv(c_out, block_co)
    grid = (cdiv(OD * OH * OW, block_p) * co_blocks, x.shape[0])
    per_image = max(c_in * plane, c_out * OD * OH * OW)
    conv_implicit_gemm_kernel[grid](
        x, weight, bias if bias is not None else weight, out, c_in, D, H, W, c_out, OD, OH, OW, co_blocks,
        x_stride_c, x_stride_position,
        *pad3(stride, 1), *pad3(padding, 0), *pad3(dilation, 1), *pad3(ksize, 1),
        HAS_BIAS=bias is not None, FEW_CHANNELS=few_channels, ROUND_INPUT=round_input,
        FP32=x.dtype == torch.float32, INPUT_PRECISION=precision,
        BLOCK_CO=block_co, BLOCK_P=block_p, BLOCK_K=block_k, INT64_INDEX=per_image >= 2**31,
        num_warps=warps, num_stages=CONV_GEMM_STAGES)
    return out'''


def serves(conv: Node) -> bool:
    """A convolution without groups (every output channel reads every input channel), or a
    transposed one of stride 1, which is such a convolution with its kernel flipped."""
    a = conv.attrs
    return a.get("groups") == 1 and (not a.get("transposed") or all(s == 1 for s in a["stride"]))


def constants(tun: dict) -> str:
    return ("# Tunables of the implicit GEMM (the search space is codegen.tunables.SPACE, conv_gemm.*):\n"
            "# output channels (at most this many) and output positions of a program's tile, input\n"
            "# channels a step, warps (of a full tile), steps in flight, fp32's precision on the tensor\n"
            "# cores (\"tf32\": as the reference's cuDNN convolution, see conv_implicit_gemm; \"tf32x3\":\n"
            "# about fp32's accuracy; \"ieee\": exact), and whether a 1x1 kernel reads a channels-last copy too.\n"
            f"CONV_GEMM_BLOCK_CO = {tun['conv_gemm.BLOCK_CO']}\n"
            f"CONV_GEMM_BLOCK_P = {tun['conv_gemm.BLOCK_P']}\n"
            f"CONV_GEMM_BLOCK_K = {tun['conv_gemm.BLOCK_K']}\n"
            f"CONV_GEMM_WARPS = {tun['conv_gemm.num_warps']}\n"
            f"CONV_GEMM_STAGES = {tun['conv_gemm.num_stages']}\n"
            f"CONV_GEMM_INPUT_PRECISION = {tun['conv_gemm.INPUT_PRECISION']!r}\n"
            f"CONV_GEMM_CHANNELS_LAST = {tun['conv_gemm.channels_last']}\n")
