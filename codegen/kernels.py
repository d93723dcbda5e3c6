"""Kernel skeletons: how a pointwise kernel and a row kernel walk their iteration space.

`build_pointwise` and `build_row` set up the program's indices (offsets, rows, columns, masks) on
an `emit.Kernel`, ask it for the node's value at those indices, and store the result. `prune`
drops index variables a kernel did not end up using.
"""
from __future__ import annotations

import re

import torch

from . import ir
from .emit import Kernel
from .scope import TL_DTYPE, NeedMaterialize, Scope, _prod, index_of
from .ir import Node
from .pointwise import compute_type


def index_vars(lin: str, sizes, prefix: str, deps: str):
    """Fixed names for the multi-index of `lin` over `sizes`: (lines, [(expr, deps)])."""
    big = [d for d, s in enumerate(sizes) if s != "1"]
    if len(big) <= 1:
        return [], [((lin if d in big else "0"), deps if d in big else "") for d in range(len(sizes))]
    lines, idx = [], []
    for d, s in enumerate(sizes):
        if s == "1":
            idx.append(("0", ""))
            continue
        name = f"{prefix}{d}"
        e = index_of(lin, sizes, d)
        lines.append(f"{name} = {e[1:-1] if e.startswith('(') else e}")
        idx.append((name, deps))
    return lines, idx


DTYPE_NAME = {torch.float32: "torch.float32", torch.float16: "torch.float16", torch.bfloat16: "torch.bfloat16",
              torch.float64: "torch.float64", torch.int64: "torch.int64", torch.int32: "torch.int32",
              torch.bool: "torch.bool", torch.int8: "torch.int8", torch.uint8: "torch.uint8",
              torch.int16: "torch.int16"}


def _store(k: Kernel, node: Node, val: str, off: str, mask: str) -> str:
    cast = TL_DTYPE[node.dtype]
    if node.dtype == torch.bool:
        val = f"({val} != 0)"
    return f"tl.store({k.ptr(node)} + {off}, {val}.to({cast}), mask={mask})"


def build_pointwise(k: Kernel) -> None:
    node = k.node
    k.kind = "pointwise"
    k.row_mask = "mask"
    pid = "tl.program_id(0).to(tl.int64)" if k.large else "tl.program_id(0)"
    k.root.lines += [f"n_elements = {_prod(node.shape)}",
                     f"offs = {pid} * BLOCK + tl.arange(0, BLOCK)",
                     "mask = offs < n_elements"]
    lines, idx = index_vars("offs", node.shape, "idx", "r")
    k.root.lines += lines
    k.flat = (idx, tuple(node.shape), "offs")
    k.tile = k.root
    val, deps = k.value(node, idx)
    if "r" not in deps:  # a value that does not vary: broadcast it over the block
        val = f"tl.full([BLOCK], {val}, {compute_type(node.dtype)})" if re.fullmatch(r"-?[\w.\"()]+", val) else f"({val} + tl.zeros([BLOCK], {compute_type(node.dtype)}))"
    k.root.lines.append(_store(k, node, val, "offs", "mask"))


def build_row(k: Kernel, F, A, strategy: str) -> None:
    """A row kernel over iteration space F reducing dims A, storing k.node."""
    node = k.node
    k.kind = "row"
    k.F, k.A = tuple(F), list(A)
    k.strategy = strategy
    kept = [F[d] for d in range(len(F)) if d not in A]
    red = [F[d] for d in A]
    k.n_rows, k.n_cols = _prod(kept), _prod(red)
    k.row_mask = "row_mask"
    pid = "tl.program_id(0).to(tl.int64)" if k.large else "tl.program_id(0)"
    if strategy == "split":
        # few long rows: SPLIT programs per row each reduce one chunk; a second kernel combines
        k.root.lines += [f"n_rows = {k.n_rows}", f"n_cols = {k.n_cols}",
                         f"programs = {pid} * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                         "row_mask = programs < n_rows * SPLIT",
                         "rows = programs // SPLIT",
                         "part = programs % SPLIT",
                         # a whole number of column blocks per chunk: aligned (vector) loads
                         "chunk = tl.cdiv(tl.cdiv(n_cols, SPLIT), BLOCK_N) * BLOCK_N"]
    elif strategy == "tiled":
        # elementwise over rows x columns: one [BLOCK_M, BLOCK_N] tile per program, so whatever
        # depends on the row alone (statistics, per-channel parameters) is computed once per row
        k.root.lines += [f"n_rows = {k.n_rows}", f"n_cols = {k.n_cols}",
                         f"pid = {pid}",
                         "col_blocks = tl.cdiv(n_cols, BLOCK_N)",
                         "rows = (pid // col_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                         "row_mask = rows < n_rows"]
    else:
        k.root.lines += [f"n_rows = {k.n_rows}", f"n_cols = {k.n_cols}",
                         f"rows = {pid} * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                         "row_mask = rows < n_rows"]
    lines, k.row_vars = index_vars("rows", kept, "row", "r")
    k.root.lines += lines
    k.col_lines, k.col_vars = index_vars("cols", red, "col", "c")
    # reduced dims innermost (size-1 dims aside): an element's offset is row * n_cols + col
    big_kept = [d for d in range(len(F)) if d not in A and F[d] != "1"]
    big_red = [d for d in A if F[d] != "1"]
    trailing = not big_kept or not big_red or max(big_kept) < min(big_red)
    full = None
    if trailing:  # reduced dims innermost: an element's offset is row * n_cols + col, no div/mod
        k.flat = (k.full_idx(), k.F, "rows * n_cols + cols")
    if strategy in ("persistent", "tiled"):
        k.tile = Scope(parent=k.root)
        first = "(pid % col_blocks) * BLOCK_N + " if strategy == "tiled" else ""
        k.tile.lines += [f"cols = {first}tl.arange(0, BLOCK_N)[None, :]", "col_mask = cols < n_cols"] + list(k.col_lines)
        k.sections = [k.tile]
        k.current_section = k.tile
        k.scope = k.tile
        full = k.full_idx()
        if trailing:
            k.flat = (full, k.F, "rows * n_cols + cols")
    source = strip_views(node, k.materialized)
    element_out = tuple(source.shape) == tuple(F) and source.kind != ir.REDUCTION
    if strategy == "tiled":  # F is the node's own shape
        element_out, source = True, (source if tuple(source.shape) == tuple(F) else node)
    if element_out:
        # a view of an F-shaped value has the same elements in the same (contiguous) order
        node = source
        if strategy in ("persistent", "tiled"):
            val, _ = k.value(node, full)
            off, _ = k.linear(full, F)
            k.tile.lines.append(_store(k, k.node, val, off, "row_mask & col_mask"))
        else:
            section = Scope(parent=k.root)
            k.sections.append(section)
            k.current_section = section
            body = Scope(parent=section)
            k.scope = body
            k.loop_section = section
            k._open_cols(body, "col_start")
            full = k.full_idx()
            if trailing:
                k.flat = (full, k.F, "rows * n_cols + cols")
            val, _ = k.value(node, full)
            off, _ = k.linear(full, F)
            k.emit(_store(k, k.node, val, off, "row_mask & col_mask"))
            k._close_loop(section, body, "col_start")
    elif strategy == "split":
        section = Scope(parent=k.root)
        k.sections.append(section)
        k.current_section = section
        k.scope = section
        for out in k.outputs:  # sibling partials of the same chunks: one read of x
            val = k.reduce(out.op, out.inputs[0], out)
            k.emit(_store(k, out, val, "programs", "row_mask"))
    else:
        # a per-row result: node's non-1 dims must be the kept dims
        if [s for s in node.shape if s != "1"] != [s for s in kept if s != "1"]:
            raise NeedMaterialize(next(iter(reductions_feeding(node, k.materialized)), node))
        it = iter([v for v, s in zip(k.row_vars, kept) if s != "1"])
        idx = [("0", "") if s == "1" else next(it) for s in node.shape]
        if strategy != "persistent":
            section = Scope(parent=k.root)
            k.sections.append(section)
            k.current_section = section
            k.scope = section
        for out in k.outputs:  # reductions of the same rows share the kernel (one read of x)
            it = iter([v for v, s in zip(k.row_vars, kept) if s != "1"])
            idx = [("0", "") if s == "1" else next(it) for s in out.shape]
            val, deps = k.value(out, idx)
            if "r" not in deps:
                val = f"({val} + tl.zeros([BLOCK_M, 1], {compute_type(out.dtype)}))"
            k.emit(_store(k, out, val, "programs" if strategy == "split" else "rows", "row_mask"))


def strip_views(node: Node, materialized) -> Node:
    """The value node is a (chain of) reshape(s) of, when computed in place."""
    while node.kind == ir.VIEW and node.op == "view":
        src = node.inputs[0]
        if src in materialized or src.kind in (ir.INPUT, ir.EXTERN):
            break
        node = src
    return node


def reductions_feeding(node: Node, known, skip=None) -> list[Node]:
    """Reductions and scans that node is computed from (node itself included), in depth-first
    order, not looking past known tensors; `skip(n)` drops n and what it is computed from."""
    seen, stack, found = set(), [node], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n is not node and (n in known or n.kind in (ir.INPUT, ir.EXTERN) or (skip and skip(n))):
            continue
        if n.kind in (ir.REDUCTION, ir.SCAN):
            found.append(n)
        stack.extend(n.inputs)
    return found


def prune(lines: list[str]) -> list[str]:
    """Drop assignments whose target is never read (index variables a kernel did not need)."""
    while True:
        text = "\n".join(lines)
        counts: dict[str, int] = {}
        for name in re.findall(r"\b[A-Za-z_]\w*\b", text):
            counts[name] = counts.get(name, 0) + 1
        keep = []
        for line in lines:
            m = re.match(r"\s*([A-Za-z_]\w*) = ", line)
            if m and counts.get(m.group(1), 0) == 1 and m.group(1) not in ("cols", "col_mask"):
                continue
            keep.append(line)
        if len(keep) == len(lines):
            return lines
        lines = keep


def render_kernel(k: Kernel) -> tuple[str, list[str]]:
    """The kernel's source and its argument names (pointers, then sizes)."""
    body = list(k.root.lines)
    for s in k.sections:
        body += s.lines
    text = "\n".join(body)
    return text, list(k.ptrs.values())
