"""Convolution epilogue over a channels-last (NHWC) cuDNN result, written back as NCHW.

On the H100, cuDNN runs a 2-D convolution several times faster on channels-last tensors (its
tensor-core kernels want channels innermost) than on NCHW ones, even counting the conversion of
the input; a transposed one without groups or dilation about twice as fast (H200). The result
comes back channels-last; this kernel applies the fused epilogue (conv bias,
activations, per-channel terms, same-shape inputs) and stores the output in the reference's
NCHW layout in the same pass. Each program owns a [BLOCK_C, BLOCK_HW] tile of one image: it reads
along channels (contiguous in NHWC) and writes along pixels (contiguous in NCHW); Triton stages
the transpose through shared memory.
"""
from __future__ import annotations

from codegen import tunables as tn
from codegen.extern.epilogue import (Operand, TileSpace, allocate_outputs, jit_source, launch_lines,
                                      store_lines, var)

SPACE = TileSpace(
    suffixes=["0", "1", "2", "3"],
    index=["n", "offs_c[:, None]", None, None],
    masks=[None, "mask_c[:, None]", None, None],
    full_mask="mask", flat_index="out_offs",
)


# Stands for the kernel's config name in the launcher prologue until the kernel is named.
CONFIG_TOKEN = "<CONV_CONFIG>"

# Emitted once per file: the input's channels-last copy, one tiled transpose (torch's generic
# copy kernel takes about three times as long for this permutation on an H100).
HELPERS = '''
@triton.jit
def nchw_to_nhwc_kernel(x_ptr, out_ptr, C, HW, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """out[n, hw, c] = x[n, c, hw]: a [BLOCK_C, BLOCK_HW] tile of one image per program."""
    pid_hw = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_hw = pid_hw * BLOCK_HW + tl.arange(0, BLOCK_HW)
    mask = (offs_c < C)[:, None] & (offs_hw < HW)[None, :]
    tile = tl.load(x_ptr + n * C * HW + offs_c[:, None] * HW + offs_hw[None, :], mask=mask)
    tl.store(out_ptr + n * HW * C + offs_hw[None, :] * C + offs_c[:, None], tile, mask=mask)


def to_channels_last(x, config):
    """A channels-last copy of a 4-D tensor (itself when it already is one)."""
    if x.is_contiguous(memory_format=torch.channels_last):
        return x
    x = x.contiguous()
    N, C, H, W = x.shape
    out = torch.empty_like(x, memory_format=torch.channels_last)
    grid = (cdiv(H * W, config["BLOCK_HW"]), cdiv(C, config["BLOCK_C"]), N)
    nchw_to_nhwc_kernel[grid](x, out, C, H * W, **config)
    return out
'''


def eligible(g) -> bool:
    """A 2-D convolution whose epilogue reads only per-channel values, scalars and tensors of the
    output's own shape (the tile knows its channel and its NCHW offset, not h and w apart)."""
    if len(g.shape) != 4:
        return False
    for op in g.epilogue.operands.values():
        if not op.flat and any(used for d, used in enumerate(op.used) if d != 1):
            return False
    return True


def emit(g) -> tuple[str, str]:
    ep = g.epilogue
    kname = f"{g.kernel_name}_kernel"
    conv = next(iter(ep.operands.values()))  # the channels-last conv result, see _conv_epilogue
    others = [op for op in ep.operands.values() if op is not conv]
    out_params = [f"{var(o.name)}_out_ptr" for o in g.outputs]
    params = out_params + [f"{conv.name}_ptr", "stride_xn", "stride_xc", "stride_xhw"]
    for op in others:
        params.append(f"{op.name}_ptr")
        if not op.flat:
            params += [f"{op.name}_stride_1"] if op.used[1] else []
    params += ["C", "HW", "BLOCK_C: tl.constexpr", "BLOCK_HW: tl.constexpr"]
    lines = [
        "pid_hw = tl.program_id(0)",
        "pid_c = tl.program_id(1)",
        "n = tl.program_id(2).to(tl.int64)",
        "offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)",
        "offs_hw = pid_hw * BLOCK_HW + tl.arange(0, BLOCK_HW)",
        "mask_c = offs_c < C",
        "mask = mask_c[:, None] & (offs_hw < HW)[None, :]",
        "# Channels-last source (channels contiguous), NCHW destination (pixels contiguous).",
        "src_offs = n * stride_xn + offs_c[:, None] * stride_xc + offs_hw[None, :] * stride_xhw",
        "out_offs = n * C * HW + offs_c[:, None] * HW + offs_hw[None, :]",
        f"{var(conv.name)} = tl.load({conv.name}_ptr + src_offs, mask=mask, other=0.0).to(tl.float32)",
    ]
    for op in others:
        if op.flat:
            lines.append(ep.operand_load(op, SPACE))
        else:
            terms = f" + offs_c[:, None] * {op.name}_stride_1" if op.used[1] else ""
            mask = "mask_c[:, None]" if op.used[1] else None
            load = f"tl.load({op.name}_ptr{terms}" + (f", mask={mask}, other=0.0)" if mask else ")")
            lines.append(f"{var(op.name)} = {load}.to(tl.float32)")
    lines += [line for _, line in ep.expressions(SPACE)]
    lines += store_lines(g, ep, "out_offs", "mask")
    kernel = jit_source(kname, params, g.doc + " Channels-last source, NCHW result.", lines)

    cfg = f"{g.kernel_name.upper()}_CONFIG"
    L = [f"def {g.name}({', '.join(g.arg_names)}):"]
    L += [f"    {s}".replace(CONFIG_TOKEN, cfg) for s in g.launcher_prologue]
    L.append(f"    N, C, H, W = {conv.name}.shape")
    allocations, outs = allocate_outputs(g, "(N, C, H, W)", f"{conv.name}.device")
    L += allocations
    args = list(outs) + [conv.name, f"{conv.name}.stride(0)", f"{conv.name}.stride(1)", f"{conv.name}.stride(3)"]
    for op in others:
        if op.flat:
            L.append(f"    {op.name} = {op.name}.contiguous()")
            args.append(op.name)
        else:
            L.append(f"    {op.name} = {op.name}.expand(N, C, H, W)")
            args.append(op.name)
            if op.used[1]:
                args.append(f"{op.name}.stride(1)")
    args += ["C", "H * W"]
    L.append(f'    grid = (cdiv(H * W, {cfg}["BLOCK_HW"]), cdiv(C, {cfg}["BLOCK_C"]), N)')
    L += launch_lines(kname, args + [f"**{cfg}"], outs)
    return kernel, "\n".join(L) + "\n"


# A depthwise convolution's groups, its input's channels: written as the input's size, so the file
# serves other channel counts (the CPU judge runs it at fewer channels than it was traced at).
INPUT_CHANNELS = "{input}.shape[1]"


def conv_arguments(extra: list[str], input_name: str) -> str:
    """A convolution call's arguments after (input, weight, bias), its input's name filled in."""
    return ", ".join(extra).replace("{input}", input_name)


def fuse_epilogue(g, arg_name, tunables: dict, target: str) -> bool:
    """The convolution of group `g` runs in torch without its bias; the bias joins the fused
    epilogue. True when it runs channels-last (the file then needs the `to_channels_last` helper)."""
    fn, extra, x, w, bias = g.conv
    conv_name = var(g.anchor.name)
    xn, wn = arg_name(x), arg_name(w)
    g.launcher_prologue.append(
        f"{conv_name} = {fn}({xn}, {wn}, None, {conv_arguments(extra, xn)})  # cuDNN, bias fused below")
    # The conv output is the first operand, read flat; the bias varies along channels only.
    ep = g.epilogue
    rank = len(g.shape)
    members_ops = dict(ep.operands)
    ep.operands = {"conv": Operand(None, conv_name, [True] * rank, flat=True)}
    ep.operands.update(members_ops)
    if bias is not None:
        bname = arg_name(bias)
        g.add_input(bias)
        g.launcher_prologue.append(
            f"{bname} = {bname}.view(-1, *([1] * ({conv_name}.dim() - 2)))  # per channel")
        used = [False] * rank
        used[1] = True
        ep.operands["conv_bias"] = Operand(None, bname, used, flat=False)
        ep.pre_lines.append(f"{conv_name} = {var(conv_name)} + {var(bname)}  # conv bias")
    ep.anchor_var = var(conv_name)
    layout = tn.conv_defaults(target)
    layout = tn.apply_overrides("conv", layout, tunables)
    if fn in ("F.conv2d", "F.conv_transpose2d") and layout["channels_last"] and eligible(g):
        # cuDNN's channels-last kernels are much faster; the epilogue writes NCHW back.
        g.kind = "conv"
        g.launcher_prologue[0] = (
            f"{conv_name} = {fn}(to_channels_last({xn}, {CONFIG_TOKEN}), {wn}, None, "
            f"{conv_arguments(extra, xn)}).contiguous(memory_format=torch.channels_last)  # cuDNN, NHWC")
        return True
    return False
