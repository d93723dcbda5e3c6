"""Emit one Triton kernel for one materialised IR node.

A kernel evaluates its node as an *index function*: `value(node, idx)` returns the name of a
Triton variable holding `node[idx]`, where `idx` is one index expression per dim of the node.
Views are pure index arithmetic (permute, slice, flip, cat, pad, gather...), pointwise ops
combine their operands' values, loads read materialised tensors (inputs, earlier kernels'
buffers). Two kernel shapes:

- pointwise: a 1-D grid over the output's elements (`offs`), index delinearised from `offs`;
- row: the iteration space F split into kept dims (rows, `BLOCK_M` per program) and reduced
  dims (columns). Reductions (sum, max, argmax, mean, var...) and scans (cumsum, cumprod) over
  exactly those dims are computed per row block, either on one register tile holding whole rows
  (`persistent`) or in a loop over `BLOCK_N`-wide column blocks (`looped`). The node's value is
  then stored per row (a reduction result) or per element (softmax, layernorm...).

Whatever a kernel cannot compute in place (a reduction over other dims, a scan read at another
position) raises `NeedMaterialize(node)`: the scheduler gives that node its own kernel and a
buffer, and retries.
"""
from __future__ import annotations

import re

from . import ir
from .ir import Node, Sym, Unsupported
from .pointwise import NotPointwise, cast, compute_type, expression, literal
from .reductions import RowReductions
from .scans import RowScans
from .scope import TL_DTYPE, Scope, _balanced, _deps, _prod, index_of, split_key
from .kernels import Skeletons
from .plans import ROW, KernelPlan
from .pools import WindowPools
from .views import IndexViews





class Kernel(IndexViews, WindowPools, RowReductions, RowScans, Skeletons):
    """Builds one kernel. `materialized` is the set of nodes readable from memory."""

    def __init__(self, plan: KernelPlan, materialized: set, tun: dict, large: bool, groups: dict):
        self.plan = plan
        self.node = plan.node
        self.outputs = list(plan.outputs)  # more than one when sibling reductions share this kernel
        self.materialized = materialized
        self.tun = tun
        self.large = large
        self.ptrs: dict[Node, str] = {}
        self.stride_reads: dict[Node, set] = {}  # inputs read through their strides -> the dims read
        self.welford_loop = False  # a column loop carries Welford accumulators (row_blocks gives it more warps)
        self._loop_counts = None  # the current column loop's Welford counts (RowReductions._accumulate)
        self.flat_reads: set = set()  # inputs read at contiguous offsets (the forward makes them so)
        self.counter = 0
        self.open_pools = 0  # pools whose window is being folded (codegen.pools)
        self.pool_run = 1  # lanes of a pool's vector of taps (codegen.pools): a tile holds that many values an output
        self.helpers: set[str] = set()  # jit helpers (reduction combines) the kernel calls
        self.root = Scope()
        self.scope = self.root
        self.sections: list[Scope] = []
        self.flat = None          # (idx, shape, expr): the kernel's own linear index
        # (index exprs, sizes) -> the flat index they were split from (delinearize): a load of a
        # contiguous tensor at that multi-index is at that flat offset, no division composed back
        self.split_from: dict[tuple, str] = {}
        self.row_vars = None      # row kernels: index exprs of the kept dims
        self.reduced: dict = {}
        self.loop_section = None  # looped row kernels: the section scope of the loop being emitted
        self.groups = groups      # id(x) -> the graph's reductions of x (one loop computes them together)
        self.constexprs: dict = {}  # extra constexpr parameter -> the launcher's expression for it
        self.part_base = None     # inside an inlined combine's loop over partials: the scope before it
        self.part_ok = None       # ... and the condition that its partial index is in range
        self.summary = ""
        self.kind = ""            # "pointwise" or "row" (set by kernels.build_*)
        self.n_rows = self.n_cols = ""  # row kernels: sizes of the kept and the reduced dims
        self.F, self.A, self.strategy = (), [], None  # row kernels: iteration space, reduced dims, strategy
        self.row_mask = ""        # the mask of this program's rows ("mask" in a pointwise kernel)
        self.tile = self.root     # the scope holding a persistent / tiled kernel's whole tile
        self.current_section = None
        self.col_lines, self.col_vars = [], []
        if plan.family == ROW:
            self.build_row(plan.space, list(plan.reduced), plan.strategy)
        else:
            self.build_pointwise()

    # -- small helpers ------------------------------------------------------------------------
    def tmp(self, prefix="t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, line: str, scope: Scope | None = None):
        (scope or self.scope).lines.append(line)

    def normal(self, expr: str) -> str:
        """expr as this kernel spells it: the row kernel's sizes by name, no redundant parentheses,
        so that the same value written two ways (the model's mean, a variance's mean) is one."""
        if self.kind == "row":
            for name, size in (("n_cols", self.n_cols), ("n_rows", self.n_rows)):
                if re.fullmatch(r"\w+", size or ""):
                    expr = expr.replace(f"({size})", name)
        expr = re.sub(r"(?<![\w.\]])\((\w+)\)", r"\1", expr)
        while expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
            expr = expr[1:-1]
        return expr

    def assign(self, expr: str, prefix="t") -> str:
        expr = self.normal(expr)
        if re.fullmatch(r"[A-Za-z_]\w*|-?\d+(\.\d*)?", expr):
            return expr
        hit = self.scope.get(("expr", expr))  # the same expression already has a name here
        if hit is not None:
            return hit
        v = self.tmp(prefix)
        self.emit(f"{v} = {expr}")
        self.scope.cache[("expr", expr)] = v
        return v

    def ptr(self, node: Node) -> str:
        if node not in self.ptrs:
            self.ptrs[node] = f"{node.name}_ptr"
        return self.ptrs[node]

    def mask(self, deps: str) -> str | None:
        parts = []
        if "r" in deps:
            parts.append(self.row_mask)
        if "c" in deps:
            parts.append("col_mask")
        if "p" in deps and self.part_ok:
            parts.append(self.part_ok)
        if not parts:
            return None
        return " & ".join(parts)

    # -- index arithmetic ---------------------------------------------------------------------
    def delinearize(self, lin: str, sizes, deps: str, prefix: str) -> list:
        idx = []
        n = len(sizes)
        for d, s in enumerate(sizes):
            if s == "1":
                idx.append(("0", ""))
                continue
            e = index_of(lin, sizes, d)
            v = self.assign(e, prefix) if n > 1 else e
            idx.append((v, deps))
        self.split_from[split_key([e for e, _ in idx], sizes)] = lin
        return idx

    def linear(self, idx, shape) -> tuple[str, str]:
        if all(s == "1" for s in shape):  # one element
            return "0", ""
        if self.flat is not None and list(idx) == list(self.flat[0]) and tuple(shape) == tuple(self.flat[1]):
            return self.flat[2], _deps(*[d for _, d in idx])
        exprs = [e for e, _ in idx]
        terms = []
        d = 0
        while d < len(idx):
            # the longest run of dims split from one flat index contributes that index
            end = next((j for j in range(len(idx), d + 1, -1) if self._split_run(exprs[d:j], shape[d:j])), None)
            if end is not None:
                e, d, used = self.split_from[split_key(exprs[d:end], shape[d:end])], end - 1, True
            else:
                e, used = exprs[d], shape[d] != "1"
            if e != "0" and used:
                stride = _prod(shape[d + 1:])
                stride = "n_cols" if self.kind == "row" and stride == self.n_cols else stride
                e = e if stride == "1" or re.fullmatch(r"\w+|\(.*\)", e) and _balanced(e[1:-1]) else f"({e})"
                terms.append(e if stride == "1" else f"{e} * {stride}" if re.fullmatch(r"\w+", stride)
                             else f"{e} * ({stride})")
            d += 1
        return (" + ".join(terms) or "0"), _deps(*[d for _, d in idx])

    def _split_run(self, exprs, sizes) -> bool:
        """Whether these dims' indices (two or more) were split from one flat index."""
        key = split_key(exprs, sizes)
        return len(key) > 1 and key in self.split_from

    def broadcast(self, operand: Node, out_shape, idx):
        k = len(out_shape) - len(operand.shape)
        out = []
        for j, s in enumerate(operand.shape):
            out.append(("0", "") if s == "1" else idx[k + j])
        return out

    # -- values ---------------------------------------------------------------------------------
    def value(self, node: Node, idx) -> tuple[str, str]:
        key = (id(node), tuple(e for e, _ in idx))
        hit = self.scope.get(key)
        if hit is not None:
            return hit
        out = self._value(node, list(idx))
        self.scope.cache[key] = out
        return out

    def _value(self, node: Node, idx):
        if node in self.materialized and node not in self.outputs or node.kind in (ir.INPUT, ir.EXTERN):
            return self.load(node, idx)
        kind = node.kind
        if kind == ir.CONST:
            if node.op == "arange":
                e, d = idx[0]
                return self.assign(f"({literal(node.attrs['start'])} + {e} * {literal(node.attrs['step'])})"), d
            v = node.attrs["value"]
            if isinstance(v, Sym):
                return f"({v.expr})", ""
            v = float(v) if node.dtype.is_floating_point else v
            return literal(v), ""
        if kind == ir.POINTWISE:
            return self.pointwise(node, idx)
        if kind == ir.VIEW:
            return self.view(node, idx)
        if kind == ir.REDUCTION:
            return self.reduction(node, idx)
        if kind == ir.SCAN:
            return self.scan(node, idx)
        if kind == ir.POOL:
            return self.pool(node, idx)
        raise Unsupported(f"unsupported: aten.{node.op}")

    def reads_strided(self, node: Node) -> bool:
        """Row kernels over rows x columns (layer/RMS norm, softmax, reductions of the last dim)
        read forward()'s inputs through their strides: a transposed or sliced input needs no copy.
        Kernels whose rows or columns span several dims (an offset would need a division per
        element) and pointwise kernels index flat, on contiguous inputs."""
        plan = self.plan
        if node.kind != ir.INPUT or node.attrs["state"] or plan.family != ROW:
            return False
        if plan.strategy not in ("persistent", "looped") or plan.strided:
            return False
        big = [d for d, s in enumerate(self.F) if s != "1"]
        return sum(d in self.A for d in big) <= 1 and sum(d not in self.A for d in big) <= 1

    def strided(self, idx, node: Node) -> tuple[str, str]:
        """The offset of input `node`'s element at `idx`, through its strides (`x_stride0`...)."""
        dims = [d for d, (e, _) in enumerate(idx) if e != "0" and node.shape[d] != "1"]
        self.stride_reads.setdefault(node, set()).update(dims)
        terms = [f"{idx[d][0]} * {node.name}_stride{d}" for d in dims]
        return (" + ".join(terms) or "0"), _deps(*[d for _, d in idx])

    def load(self, node: Node, idx):
        if self.reads_strided(node):
            off, deps = self.strided(idx, node)
        else:
            off, deps = self.linear(idx, node.shape)
            self.flat_reads.add(node)
        ptr = self.ptr(node)
        mask = self.mask(deps)
        if mask is None:
            expr = f"tl.load({ptr} + {off})"
        else:
            expr = f"tl.load({ptr} + {off}, mask={mask}, other=0)"
        ct = compute_type(node.dtype)
        if TL_DTYPE.get(node.dtype) != ct or node.dtype.is_floating_point:
            expr += f".to({ct})"  # fp16/bf16 math happens in fp32
        return self.assign(expr, "x"), deps

    def pointwise(self, node: Node, idx):
        deps = []

        def operand(v):
            if isinstance(v, Node):
                e, d = self.value(v, self.broadcast(v, node.shape, idx))
                deps.append(d)
                want = compute_type(node.dtype)
                if node.op not in ("where", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                                   "logical_not", "logical_xor", "isnan", "isinf", "signbit", "bitwise_not") \
                        and compute_type(v.dtype) != want and not node.op.startswith(("_to_copy", "convert")):
                    return cast(e, want)
                if node.op in ("where",) and v is not node.attrs.get("condition") and compute_type(v.dtype) != compute_type(node.dtype):
                    return cast(e, compute_type(node.dtype))
                return e
            return literal(v) if not isinstance(v, str) else v

        try:
            expr = expression(node, operand)
        except NotPointwise as e:
            raise Unsupported(f"unsupported: {e}")
        return self.assign(expr, "v"), _deps(*deps)

    # -- views ------------------------------------------------------------------------------------
    def _shape_of(self, deps: str) -> str:
        if self.row_vars is None:
            return "[BLOCK]"
        if "c" in deps:
            return "[BLOCK_M, BLOCK_N]"
        return "[BLOCK_M, 1]"

    # -- reductions and scans (row kernels) -----------------------------------------------------------
