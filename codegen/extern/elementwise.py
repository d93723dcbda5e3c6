"""Elementwise kernel: a fused pointwise chain over one output shape.

Used for the epilogue of a convolution (cuDNN computes the convolution; bias, activations,
scales and residuals follow in one pass over its output) and for pointwise chains that no extern
op feeds. Inputs of the output's shape are read at the flat offset; broadcast inputs (a per-channel
bias, a per-row scale) recover only the indices of the dimensions they vary along.
"""
from __future__ import annotations

from codegen.extern.epilogue import (TileSpace, allocate_outputs, jit_source, launch_lines,
                                      store_lines, var)
from codegen.extern.ops import TRIANGLE_OPS, packet


def space_for(rank: int) -> TileSpace:
    return TileSpace(suffixes=[str(d) for d in range(rank)], index=[f"idx{d}" for d in range(rank)],
                     masks=[None] * rank, full_mask="mask", flat_index="offs",
                     row_dim=rank - 2 if rank >= 2 else None,
                     col_dim=rank - 1 if rank >= 2 else None)


def _sizes(dims, rank) -> list[tuple[str, str]]:
    """(kernel parameter, launcher value) of the sizes that recover the index along `dims` from a
    flat offset: each dim's size (past the first) and the elements of one step along it."""
    out = []
    for d in dims:
        if d > 0:
            out.append((f"size{d}", f"shape[{d}]"))
        if d < rank - 1:
            out.append((f"inner{d}", f"math.prod(shape[{d + 1}:])"))
    return out


def emit(g) -> tuple[str, str]:
    ep = g.epilogue
    rank = len(g.shape)
    space = space_for(rank)
    kname = f"{g.kernel_name}_kernel"
    dims = {d for op in ep.operands.values() if not op.flat for d, used in enumerate(op.used) if used}
    if any(packet(m) in TRIANGLE_OPS for m in ep.members):  # tril/triu need row and column
        dims |= {rank - 2, rank - 1}
    dims = sorted(dims)
    out_params = [f"{var(o.name)}_out_ptr" for o in g.outputs]
    sizes = _sizes(dims, rank)
    params = out_params + ep.stride_params(space) + ["n_elements"] + [name for name, _ in sizes] + [
        "BLOCK_SIZE: tl.constexpr", "INT64_INDEX: tl.constexpr"]
    lines = [
        "pid = tl.program_id(0)",
        "if INT64_INDEX:  # more than 2**31 elements: 64-bit offsets",
        "    pid = pid.to(tl.int64)",
        "offs = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)",
        "mask = offs < n_elements",
    ]
    if dims:
        lines.append("# Indices along the dimensions that broadcast inputs vary in.")
    for d in dims:
        if d == 0:
            lines.append("idx0 = offs // inner0" if rank > 1 else "idx0 = offs")
        elif d == rank - 1:
            lines.append(f"idx{d} = offs % size{d}")
        else:
            lines.append(f"idx{d} = (offs // inner{d}) % size{d}")
    lines += [ep.operand_load(op, space) for op in ep.operands.values()]
    lines += [line for _, line in ep.expressions(space)]
    lines += store_lines(g, ep, "offs", "mask")
    kernel = jit_source(kname, params, g.doc, lines)

    cfg = f"{g.kernel_name.upper()}_CONFIG"
    L = [f"def {g.name}({', '.join(g.arg_names)}):"]
    L += [f"    {s}" for s in g.launcher_prologue]
    first = next(iter(ep.operands.values()))
    full = [op for op in ep.operands.values() if op.flat]
    if full:  # an input of the output's own shape gives it (torch.broadcast_shapes is slow)
        L.append(f"    shape = {full[0].name}.shape")
    else:
        L.append(f"    shape = torch.broadcast_shapes({', '.join(op.name + '.shape' for op in ep.operands.values())})")
    prepared = {}
    for op in ep.operands.values():
        if op.flat:
            L.append(f"    {op.name} = {op.name}.contiguous()")
        else:
            L.append(f"    {op.name} = {op.name}.expand(shape)")
        prepared[op.name] = op.name
    allocations, outs = allocate_outputs(g, "shape", f"{first.name}.device")
    L += allocations
    L.append(f"    n_elements = {outs[0]}.numel()")
    L.append(f'    grid = (cdiv(n_elements, {cfg}["BLOCK_SIZE"]),)')
    call = outs + ep.stride_args(prepared, space) + ["n_elements"] + [value for _, value in sizes] + [
        "INT64_INDEX=n_elements >= 2**31", f"**{cfg}"]
    L += launch_lines(kname, call, outs)
    return kernel, "\n".join(L) + "\n"
