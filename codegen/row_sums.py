"""A sum whose terms use their row's statistics, rewritten so that one read of the row computes it.

KL divergence over log_softmax (and any loss of the form sum(t * (x - max - lse)) per row) needs
the row's maximum and log-sum-exp before its sum can start: two reads of each row. But the sum is
linear in those statistics: sum_j(t_j * (x_j - c)) = sum_j(t_j * x_j) - c * sum_j(t_j) for a row
constant c. So the sum is rewritten as sums of terms that use no statistic, each multiplied by a
row constant after the loop:

    sum(E) = sum(P) + sum_k C_k * sum(Q_k)     (P, Q_k: no statistic; C_k: row constants)

and a looped kernel accumulates the statistics and every sum(P), sum(Q_k) in one loop (see
reductions.RowReductions._loop_mates): one read of each row.

Cancellation: x - max becomes (x - x0) - (max - x0), x0 the row's first element. Inputs shifted by a
large constant (mean + 1000) keep their accuracy: x - x0 is as small as x - max.
"""
from __future__ import annotations

import torch

from . import ir
from .ir import Node
from .kernels import reductions_feeding

LINEAR_OPS = ("add", "sub", "mul", "div", "neg")


def distribute_row_constants(graph: ir.Graph) -> list[Node]:
    """Every float sum whose input needs log_softmax's statistics (amax, sumexp) of values that
    need no reduction, over the sum's innermost dims, and is linear in them, becomes sums of
    stat-free terms (means are left alone: x - mean(x) has no shift that keeps it accurate).
    Returns the per-row results that a further sum over other dims reads: each is stored by its
    row kernel (one value a row), the rest is a small kernel over them."""
    per_row = []
    users = graph.users()
    for s in list(graph.nodes):
        if s.kind != ir.REDUCTION or s.op != "sum" or not s.dtype.is_floating_point or s.attrs.get("combine"):
            continue
        rows = _Rewrite(graph, s).apply()
        if rows is not None and (s.kind == ir.REDUCTION or any(u.kind == ir.REDUCTION for u in users[s])):
            per_row.append(rows)
    return per_row


class _Rewrite:
    def __init__(self, graph: ir.Graph, s: Node):
        self.graph, self.s = graph, s
        self.e = s.inputs[0]
        self.rank = len(self.e.shape)
        self.new: list[Node] = []
        self.stats = self._statistics()
        self.dims = sorted(self.stats[0].attrs["dims"]) if self.stats else []

    def _statistics(self) -> list[Node]:
        """The reductions the sum's input reads, all over the same dims (inside the sum's), of
        inputs that need no reduction themselves; [] where the sum does not qualify."""
        found = reductions_feeding(self.e, ())
        if any(r.kind != ir.REDUCTION for r in found):
            return []  # a scan
        dims = {tuple(sorted(r.attrs["dims"])) for r in found}
        if len(dims) != 1 or not all(r.attrs.get("keepdim") and not r.attrs.get("split") for r in found):
            return []
        d = next(iter(dims))
        if not set(d) <= set(self.s.attrs["dims"]) or d != tuple(range(self.rank - len(d), self.rank)):
            return []  # statistics over the sum's innermost dims only
        if not found or any(r.op not in ("amax", "sumexp") or reductions_feeding(r.inputs[0], ())
                            or tuple(r.inputs[0].shape) != tuple(self.e.shape) for r in found):
            return []
        return found

    # -- classification ----------------------------------------------------------------------
    def _uses_stats(self, n: Node) -> bool:
        return any(r in self.stats for r in reductions_feeding(n, ()))

    def _row_constant(self, n: Node) -> bool:
        """n is broadcast along the statistics' dims (size 1 there, aligned to the right)."""
        shape = ["1"] * (self.rank - len(n.shape)) + list(n.shape)
        return len(shape) == self.rank and all(shape[d] == "1" for d in self.dims)

    # -- the decomposition ---------------------------------------------------------------------
    def terms(self, n: Node):
        """n as [(element, constant, sign)]: sign * element * constant, element a stat-free node
        of the row's shape (None: 1), constant a row-constant node (None: 1). None: not linear."""
        if not self._uses_stats(n):
            return [(n, None, 1)]
        if self._row_constant(n):
            return [(None, n, 1)]
        if n.kind == ir.VIEW and n.op in ("view", "expand") and tuple(n.inputs[0].shape) == tuple(n.shape):
            return self.terms(n.inputs[0])
        if n.kind != ir.POINTWISE or n.op not in LINEAR_OPS or not n.dtype.is_floating_point:
            return None
        a, b = n.attrs.get("self"), n.attrs.get("other")
        if n.op == "neg":
            ta = self.terms(a) if isinstance(a, Node) else None
            return None if ta is None else [(e, c, -g) for e, c, g in ta]
        if n.op in ("mul", "div") and isinstance(a, Node) and _number(b):  # a scale: each term scaled
            ta = self.terms(a)
            if ta is None or (n.op == "div" and n.attrs.get("rounding_mode") is not None):
                return None
            return [(self._scaled(e, n.op, b), c, g) if e is not None else (e, self._scaled(c, n.op, b), g)
                    for e, c, g in ta]
        if not isinstance(a, Node) or not isinstance(b, Node) or n.op == "div":
            return None  # a number added to a statistic, or a division by a tensor: left as it is
        if n.op in ("add", "sub"):
            if n.attrs.get("alpha", 1) not in (1, None):
                return None
            shifted = self._shifted(a, b) if n.op == "sub" else None
            if shifted is not None:
                return shifted
            ta, tb = self.terms(a), self.terms(b)
            if ta is None or tb is None:
                return None
            return ta + [(e, c, -g if n.op == "sub" else g) for e, c, g in tb]
        # mul: one side stat-free or row-constant
        for x, y in ((a, b), (b, a)):
            ty = self.terms(y)
            if ty is None:
                continue
            if not self._uses_stats(x) and not self._row_constant(x):
                return [(self._mul(x, e, y), c, g) for e, c, g in ty]
            if self._row_constant(x):
                return [(e, x if c is None else self._mul(x, c, x), g) for e, c, g in ty]
        return None

    def _shifted(self, x: Node, m: Node):
        """x - amax(x) as (x - x0) + (x0 - amax(x)), x0 the row's first element."""
        stat = m
        while stat.kind == ir.VIEW and stat.op in ("view", "expand", "broadcast_in_dim"):
            stat = stat.inputs[0]
        if stat not in self.stats or stat.op != "amax" or stat.inputs[0] is not x or self._uses_stats(x):
            return None
        first = x
        for d in self.dims:
            shape = tuple("1" if i == d else s for i, s in enumerate(first.shape))
            hint = tuple(1 if i == d else h for i, h in enumerate(first.hint))
            first = self._node("first", "slice", ir.VIEW, [first], {"dim": d, "start": 0, "end": 1, "step": 1},
                               shape, hint, x.dtype)
        centred = self._binary("sub", x, first, x)
        return [(centred, None, 1), (None, self._binary("sub", first, m, first), 1)]

    # -- new nodes -------------------------------------------------------------------------------
    def _node(self, suffix, op, kind, args, attrs, shape, hint, dtype=torch.float32) -> Node:
        n = Node(name=f"{self.s.name}_{suffix}{len(self.new)}", op=op, kind=kind, args=args, attrs=attrs,
                 shape=tuple(shape), hint=tuple(hint), dtype=dtype)
        self.new.append(n)
        return n

    def _binary(self, op, a, b, like) -> Node:
        return self._node(op, op, ir.POINTWISE, [a, b], {"self": a, "other": b}, like.shape, like.hint)

    def _scaled(self, x: Node, op: str, number) -> Node:
        return self._node(op, op, ir.POINTWISE, [x, number], {"self": x, "other": number}, x.shape, x.hint)

    def _mul(self, x, e, like) -> Node:
        return x if e is None else self._binary("mul", x, e, like if len(like.shape) >= len(e.shape) else e)

    def _sum(self, x: Node) -> Node:
        shape = tuple("1" if i in self.dims else s for i, s in enumerate(x.shape))
        hint = tuple(1 if i in self.dims else h for i, h in enumerate(x.hint))
        return self._node("rowsum", "sum", ir.REDUCTION, [x], {"dims": list(self.dims), "keepdim": True},
                          shape, hint)

    def apply(self) -> Node | None:
        """The node of the rows' sums the sum now reads (None: left as it was)."""
        if not self.stats:
            return None
        terms = self.terms(self.e)
        if terms is None or all(e is None for e, _, _ in terms):
            return None
        if any(e is not None and tuple(e.shape) != tuple(self.e.shape) for e, _, _ in terms):
            return None  # a term broadcast along the row (a per-column weight alone): not summed here
        plain = None  # sum of the stat-free terms with constant 1
        by_element: dict = {}  # id(element) -> (element, row constant)
        count = None
        for e, c, g in terms:
            if c is None:
                if e is None:
                    return None  # a bare number beside statistics: not worth a special case
                if plain is None:
                    plain = e if g == 1 else self._node("neg", "neg", ir.POINTWISE, [e], {"self": e}, e.shape, e.hint)
                else:
                    plain = self._binary("add" if g == 1 else "sub", plain, e, e)
                continue
            coef = c if g == 1 else self._node("neg", "neg", ir.POINTWISE, [c], {"self": c}, c.shape, c.hint)
            if e is None:
                count = coef if count is None else self._binary("add", count, coef, coef)
                continue
            old = by_element.get(id(e))
            by_element[id(e)] = (e, coef if old is None else self._binary("add", old[1], coef, coef))
        if count is not None:
            return None  # terms constant along the row (sum(c) = n * c): no task needs it yet
        rows = self._sum(plain) if plain is not None else None
        for e, coef in by_element.values():
            total = self._sum(e)
            part = self._binary("mul", total, coef, total)
            rows = part if rows is None else self._binary("add", rows, part, part)
        if sorted(self.s.attrs["dims"]) == self.dims:  # the rows' sums are the result
            self.s.op, self.s.kind, self.s.args, self.s.attrs = "view", ir.VIEW, [rows], {"shape": self.s.shape}
        else:  # the rows' sums, summed over the other dims
            self.s.args = [rows]
        i = self.graph.nodes.index(self.s)
        self.graph.nodes[i:i] = self.new
        return rows


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
