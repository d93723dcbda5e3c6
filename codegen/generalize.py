"""Turn sizes the trace baked in as constants back into sizes read from the inputs.

Symbolic tracing keeps input sizes symbolic until the model compares one with a Python int it
holds (LayerNorm's normalized_shape, a Linear's in_features): then that size becomes the literal
(8192) and so does everything derived from it (a mean's divisor 8192.0). The generated file must
run at other sizes too (the harness shrinks a task's module-level constants on CPU), so:

1. find the task's size constants: module-level ints whose halving changes an input's shape;
2. trace again with all of them halved;
3. walk both graphs side by side: a literal that changed with the sizes is re-expressed over
   input dims (one dim, a product of two, or their reciprocal), matched on both traces' values.

Graphs that differ in structure are left as traced (the sizes stay specialised).
"""
from __future__ import annotations

import itertools
import re

import torch

from . import ir
from .ir import Sym


def size_constants(ns: dict) -> dict[str, int]:
    """Module-level ints of the task that set the shape of some input."""
    def shapes():
        try:
            with torch.device("meta"):
                xs = ns["get_inputs"]()
        except Exception:
            return None
        return [tuple(x.shape) for x in xs if isinstance(x, torch.Tensor)]

    base = shapes()
    if base is None:
        return {}
    out = {}
    for name, value in list(ns.items()):
        if type(value) is not int or value < 4 or name.startswith("_"):
            continue
        ns[name] = value // 2
        try:
            if shapes() != base:
                out[name] = value
        finally:
            ns[name] = value
    return out


def perturbed(task_source: str, consts: dict[str, int]) -> dict:
    """A fresh namespace of the task with every size constant halved."""
    from .capture import load_task

    ns = load_task(task_source)
    for name, value in consts.items():
        ns[name] = value // 2
    return ns


def _has_literal(expr: str) -> bool:
    """Whether a size expression holds a number a trace may have baked in (not 0/1/2)."""
    return any(int(t) > 2 for t in re.findall(r"\b\d+\b", expr))


class _Dims:
    """Runtime-readable quantities: input dims, with their values in both traces."""

    def __init__(self, g1: ir.Graph, g2: ir.Graph):
        self.g1 = g1
        self.dims = []  # (pos, dim, v1, v2)
        pairs = sorted(zip(g1.inputs, g2.inputs), key=lambda p: bool(p[0].attrs["state"]))
        for n1, n2 in pairs:
            for d, (h1, h2) in enumerate(zip(n1.hint, n2.hint)):
                if isinstance(h1, int) and isinstance(h2, int):
                    self.dims.append((n1.attrs["position"], d, h1, h2))
        self.next_id = 9000
        self.known: dict[tuple[int, int], str] = {}  # (size on trace 1, on trace 2) -> expression
        self.names: dict[tuple[int, int], str] = {}
        for sym, where in g1.symbols.items():
            self.names[where] = sym

    def name(self, pos, d) -> str:
        if (pos, d) not in self.names:
            sym = f"s{self.next_id}"
            self.next_id += 1
            self.names[(pos, d)] = sym
            self.g1.symbols[sym] = (pos, d)
        return self.names[(pos, d)]

    def holds(self, expr: str, v2) -> bool:
        """Whether a size expression over input dims already gives trace 2's value (a convolution's
        output height `3 + s2 - s7` holds a literal but follows the sizes)."""
        values = {self.names[(pos, d)]: b for pos, d, _, b in self.dims if (pos, d) in self.names}
        syms = set(re.findall(r"\b[A-Za-z_]\w*\b", expr))
        if not syms or not syms <= set(values):
            return False
        try:
            return eval(expr, {"__builtins__": {}}, values) == v2
        except Exception:
            return False

    def find(self, v1, v2):
        """An expression over input dims equal to v1 on trace 1 and v2 on trace 2 (or None)."""
        if v1 == v2:
            return None
        singles = [(pos, d, a, b) for pos, d, a, b in self.dims if a != b]
        for pos, d, a, b in singles:
            if a == v1 and b == v2:
                return self.name(pos, d), "int"
        for (p1, d1, a1, b1), (p2, d2, a2, b2) in itertools.combinations_with_replacement(self.dims, 2):
            if a1 * a2 == v1 and b1 * b2 == v2 and (a1 != b1 or a2 != b2):
                return f"{self.name(p1, d1)}*{self.name(p2, d2)}", "int"
        if isinstance(v1, float) and v1 != 0 and v2 != 0:
            r1, r2 = 1.0 / v1, 1.0 / v2
            for pos, d, a, b in singles:
                if abs(a - r1) < 1e-6 * a and abs(b - r2) < 1e-6 * b:
                    return f"1.0 / {self.name(pos, d)}", "float"
        return None


def generalize(g1: ir.Graph, g2: ir.Graph) -> int:
    """Re-express in g1 the literals that differ from g2; returns how many were changed."""
    if len(g1.nodes) != len(g2.nodes) or any(a.op != b.op for a, b in zip(g1.nodes, g2.nodes)):
        return 0
    dims = _Dims(g1, g2)
    changed = 0
    for n1, n2 in zip(g1.nodes, g2.nodes):
        shape = list(n1.shape)
        for i, (s, h1, h2) in enumerate(zip(n1.shape, n1.hint, n2.hint)):
            if _has_literal(s) and isinstance(h2, int) and h1 != h2 and not dims.holds(s, h2):
                found = dims.find(h1, h2)
                if found:
                    shape[i] = found[0]
                    changed += 1
        if n1.kind == ir.POOL:
            from .classify import pool_out_shape

            shape = list(pool_out_shape(n1.inputs[0].shape, n1.attrs) or shape)
        for i, (s_, h1, h2) in enumerate(zip(shape, n1.hint, n2.hint)):
            if (_has_literal(s_) and isinstance(h2, int) and h1 != h2 and (h1, h2) in dims.known
                    and not dims.holds(s_, h2)):
                shape[i] = dims.known[(h1, h2)]  # the same size as an earlier node's dim
        if shape != list(n1.shape):
            n1.shape = tuple(shape)
            if "shape" in n1.attrs:
                n1.attrs["shape"] = n1.shape
        for s_, h1, h2 in zip(n1.shape, n1.hint, n2.hint):
            # a size read from the inputs (pooling's output length: (L - 8) // 2 + 1 holds literals)
            if (not _has_literal(s_) or n1.kind == ir.POOL or dims.holds(s_, h2)) and isinstance(h1, int) and isinstance(h2, int) and h1 != h2:
                dims.known.setdefault((h1, h2), s_)
        for key, v1 in list(n1.attrs.items()):
            v2 = n2.attrs.get(key)
            if isinstance(v1, Sym) and isinstance(v2, Sym) and _has_literal(v1.expr) and v1.hint != v2.hint:
                found = dims.find(v1.hint, v2.hint)
                if found:
                    expr = found[0] if found[1] == "int" and isinstance(v1.hint, int) else f"float({found[0]})"
                    sym = Sym(expr, v1.hint)
                    n1.attrs[key] = sym
                    n1.args = [sym if a is v1 else a for a in n1.args]
                    changed += 1
                continue
            if isinstance(v1, (int, float)) and not isinstance(v1, bool) and isinstance(v2, (int, float)) and v1 != v2:
                found = dims.find(v1, v2)
                if found:
                    expr = found[0] if found[1] == "int" or isinstance(v1, int) else f"float({found[0]})"
                    sym = Sym(expr, v1)
                    n1.attrs[key] = sym
                    n1.args = [sym if (a is v1 or (type(a) is type(v1) and a == v1)) else a for a in n1.args]
                    changed += 1
    return changed
