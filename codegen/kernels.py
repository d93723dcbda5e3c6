"""Kernel skeletons: how a pointwise kernel and a row kernel walk their iteration space.

`Skeletons.build_pointwise` and `build_row` (methods of emit.Kernel) set up the program's indices
(offsets, rows, columns, masks), ask for the node's value at those indices, and store the result. `prune`
drops index variables a kernel did not end up using.
"""
from __future__ import annotations

import re

import torch

from . import ir
from .scope import TL_DTYPE, NeedMaterialize, Scope, _prod, index_of, split_key
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


class Skeletons:
    """How emit.Kernel walks its iteration space (a mixin: the builder methods of a kernel)."""

    def _store(self, node: Node, val: str, off: str, mask: str) -> str:
        cast = TL_DTYPE[node.dtype]
        if node.dtype == torch.bool:
            val = f"({val} != 0)"
        return f"tl.store({self.ptr(node)} + {off}, {val}.to({cast}), mask={mask})"


    def build_pointwise(self) -> None:
        node = self.node
        self.kind = "pointwise"
        self.row_mask = "mask"
        pid = "tl.program_id(0).to(tl.int64)" if self.large else "program"  # see launchers.py: INT64_INDEX
        self.root.lines += [f"n_elements = {_prod(node.shape)}",
                         f"offs = {pid} * BLOCK + tl.arange(0, BLOCK)",
                         "mask = offs < n_elements"]
        lines, idx = index_vars("offs", node.shape, "idx", "r")
        self.root.lines += lines
        self.flat = (idx, tuple(node.shape), "offs")
        self.tile = self.root
        val, deps = self.value(node, idx)
        if "r" not in deps:  # a value that does not vary: broadcast it over the block
            val = f"tl.full([BLOCK], {val}, {compute_type(node.dtype)})" if re.fullmatch(r"-?[\w.\"()]+", val) else f"({val} + tl.zeros([BLOCK], {compute_type(node.dtype)}))"
        self.root.lines.append(self._store(node, val, "offs", "mask"))


    def build_row(self, F, A, strategy: str) -> None:
        """A row kernel over iteration space F reducing dims A, storing self.node."""
        node = self.node
        self.kind = "row"
        self.F, self.A = tuple(F), list(A)
        self.strategy = strategy
        kept = [F[d] for d in range(len(F)) if d not in A]
        red = [F[d] for d in A]
        self.n_rows, self.n_cols = _prod(kept), _prod(red)
        self.row_mask = "row_mask"
        pid = "tl.program_id(0).to(tl.int64)" if self.large else "program"  # see launchers.py: INT64_INDEX
        if strategy == "split":
            # few long rows: SPLIT programs per row each reduce one chunk; a second kernel combines
            self.root.lines += [f"n_rows = {self.n_rows}", f"n_cols = {self.n_cols}",
                             f"programs = {pid} * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                             "row_mask = programs < n_rows * SPLIT",
                             "rows = programs // SPLIT",
                             "part = programs % SPLIT",
                             # a whole number of column blocks per chunk: aligned (vector) loads
                             "chunk = tl.cdiv(tl.cdiv(n_cols, SPLIT), BLOCK_N) * BLOCK_N"]
        elif strategy == "tiled":
            # elementwise over rows x columns: one [BLOCK_M, BLOCK_N] tile per program, so whatever
            # depends on the row alone (statistics, per-channel parameters) is computed once per row
            self.root.lines += [f"n_rows = {self.n_rows}", f"n_cols = {self.n_cols}",
                             f"pid = {pid}",
                             "col_blocks = tl.cdiv(n_cols, BLOCK_N)",
                             "rows = (pid // col_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                             "row_mask = rows < n_rows"]
        else:
            self.root.lines += [f"n_rows = {self.n_rows}", f"n_cols = {self.n_cols}",
                             f"rows = {pid} * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                             "row_mask = rows < n_rows"]
        lines, self.row_vars = index_vars("rows", kept, "row", "r")
        self.root.lines += lines
        self.col_lines, self.col_vars = index_vars("cols", red, "col", "c")
        for lin, sizes, idx in (("rows", kept, self.row_vars), ("cols", red, self.col_vars)):
            self.split_from[split_key([e for e, _ in idx], sizes)] = lin
        # reduced dims innermost (size-1 dims aside): an element's offset is row * n_cols + col
        big_kept = [d for d in range(len(F)) if d not in A and F[d] != "1"]
        big_red = [d for d in A if F[d] != "1"]
        trailing = not big_kept or not big_red or max(big_kept) < min(big_red)
        full = None
        if trailing:  # reduced dims innermost: an element's offset is row * n_cols + col, no div/mod
            self.flat = (self.full_idx(), self.F, "rows * n_cols + cols")
        if strategy in ("persistent", "tiled"):
            self.tile = Scope(parent=self.root)
            first = "(pid % col_blocks) * BLOCK_N + " if strategy == "tiled" else ""
            self.tile.lines += [f"cols = {first}tl.arange(0, BLOCK_N)[None, :]", "col_mask = cols < n_cols"] + list(self.col_lines)
            self.sections = [self.tile]
            self.current_section = self.tile
            self.scope = self.tile
            full = self.full_idx()
            if trailing:
                self.flat = (full, self.F, "rows * n_cols + cols")
        source = strip_views(node, self.materialized)
        element_out = tuple(source.shape) == tuple(F) and source.kind != ir.REDUCTION
        if strategy == "tiled":  # F is the node's own shape
            element_out, source = True, (source if tuple(source.shape) == tuple(F) else node)
        if element_out:
            # a view of an F-shaped value has the same elements in the same (contiguous) order
            node = source
            if strategy in ("persistent", "tiled"):
                val, _ = self.value(node, full)
                off, _ = self.linear(full, F)
                self.tile.lines.append(self._store(self.node, val, off, "row_mask & col_mask"))
            else:
                section = Scope(parent=self.root)
                self.sections.append(section)
                self.current_section = section
                body = Scope(parent=section)
                self.scope = body
                self.loop_section = section
                self._open_cols(body, "col_start")
                full = self.full_idx()
                if trailing:
                    self.flat = (full, self.F, "rows * n_cols + cols")
                val, _ = self.value(node, full)
                off, _ = self.linear(full, F)
                self.emit(self._store(self.node, val, off, "row_mask & col_mask"))
                self._close_loop(section, body, "col_start")
        elif strategy == "split":
            section = Scope(parent=self.root)
            self.sections.append(section)
            self.current_section = section
            self.scope = section
            for out in self.outputs:  # sibling partials of the same chunks: one read of x
                val = self.reduce(out.op, out.inputs[0], out)
                self.emit(self._store(out, val, "programs", "row_mask"))
        else:
            # a per-row result: node's non-1 dims must be the kept dims
            if [s for s in node.shape if s != "1"] != [s for s in kept if s != "1"]:
                raise NeedMaterialize(next(iter(reductions_feeding(node, self.materialized)), node))
            it = iter([v for v, s in zip(self.row_vars, kept) if s != "1"])
            idx = [("0", "") if s == "1" else next(it) for s in node.shape]
            if strategy != "persistent":
                section = Scope(parent=self.root)
                self.sections.append(section)
                self.current_section = section
                self.scope = section
            for out in self.outputs:  # reductions of the same rows share the kernel (one read of x)
                it = iter([v for v, s in zip(self.row_vars, kept) if s != "1"])
                idx = [("0", "") if s == "1" else next(it) for s in out.shape]
                val, deps = self.value(out, idx)
                if "r" not in deps:
                    val = f"({val} + tl.zeros([BLOCK_M, 1], {compute_type(out.dtype)}))"
                self.emit(self._store(out, val, "programs" if strategy == "split" else "rows", "row_mask"))


def strip_views(node: Node, materialized) -> Node:
    """The value node is a (chain of) reshape(s) of, when computed in place."""
    while node.kind == ir.VIEW and node.op == "view":
        src = node.inputs[0]
        if src in materialized or src.kind in (ir.INPUT, ir.EXTERN):
            break
        node = src
    return node


def reductions_feeding(node: Node, known, skip=None) -> list[Node]:
    """Reductions and scans that node is computed from: see nodes_feeding."""
    return nodes_feeding(node, known, (ir.REDUCTION, ir.SCAN), skip)


def nodes_feeding(node: Node, known, kinds: tuple, skip=None) -> list[Node]:
    """Nodes of `kinds` that node is computed from (node itself included), in depth-first order,
    not looking past known tensors; `skip(n)` drops n and what it is computed from."""
    seen, stack, found = set(), [node], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n is not node and (n in known or n.kind in (ir.INPUT, ir.EXTERN) or (skip and skip(n))):
            continue
        if n.kind in kinds:
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
