"""Turn sizes the trace baked in as constants back into sizes read from the inputs.

Symbolic tracing keeps input sizes symbolic until the model compares one with a Python int it
holds (LayerNorm's normalized_shape, a Linear's in_features): then that size becomes the literal
(8192) and so does everything derived from it (a mean's divisor 8192.0). The generated file must
run at other sizes too (the harness shrinks a task's module-level constants on CPU), so:

1. find the task's size constants: module-level ints whose halving changes an input's shape;
2. trace again with all of them halved, and once more per constant with only that one halved;
3. walk the graphs side by side: a literal that changed with the sizes is re-expressed over
   input dims (one dim, a product of two, a dim over a fixed count, or a reciprocal), matched on
   its values over all traces (so HEIGHT == WIDTH or BATCH == CHANNELS stay apart), an operand's
   own dim first (a permute's source, a matmul's rows and columns, a conv's channels).

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
                xs = list(ns["get_inputs"]())
        except Exception:
            return None
        try:  # a parameter's size too (a Linear's out_features): the harness shrinks those as well
            with torch.device("meta"):
                model = ns["Model"](*ns["get_init_inputs"]())
            xs += list(model.state_dict().values())
        except Exception:
            pass
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


def perturbed(task_source: str, consts: dict[str, int], scale: float = 0.5) -> dict:
    """A fresh namespace of the task with every size constant in `consts` halved (scale 0.5) or
    doubled (2)."""
    from .capture import load_task

    ns = load_task(task_source)
    for name, value in consts.items():
        ns[name] = int(value * scale)
    return ns


def _has_literal(expr: str, above: int = 2) -> bool:
    """Whether a size expression holds a number a trace may have baked in (not 0/1/2; a dim of
    size 2 that changed with the sizes counts: two channels per group)."""
    return any(int(t) > above for t in re.findall(r"\b\d+\b", expr))


class _Dims:
    """Runtime-readable quantities: input dims, with their values in both traces."""

    def __init__(self, g1: ir.Graph, g2: ir.Graph):
        self.g1 = g1
        self.dims = []  # (pos, dim, v1, v2)
        pairs = sorted(zip(g1.inputs, g2.inputs), key=lambda p: bool(p[0].attrs["state"]))
        for n1, n2 in pairs:
            for d, (h1, h2) in enumerate(zip(n1.hint, n2.hint)):
                if isinstance(h1, int) and _ints(h2):
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
        syms = set(re.findall(r"\b[A-Za-z_]\w*\b", expr))
        names = {self.names[(pos, d)]: b for pos, d, _, b in self.dims if (pos, d) in self.names}
        if not syms or not syms <= set(names) or not isinstance(v2, tuple):
            return False
        try:
            return all(eval(expr, {"__builtins__": {}}, {k: b[t] for k, b in names.items()}) == v
                       for t, v in enumerate(v2))
        except Exception:
            return False

    def values(self, expr: str):
        """A size expression's value on trace 1 and its values on the other traces (or None when it
        reads something that is not an input dim)."""
        syms = set(re.findall(r"\b[A-Za-z_]\w*\b", expr)) - {"float"}
        on = {self.names[(pos, d)]: (a, b) for pos, d, a, b in self.dims if (pos, d) in self.names}
        if not syms <= set(on) or not on:
            return None
        env = {"__builtins__": {}, "float": float}
        try:
            v1 = eval(expr, env, {k: a for k, (a, _) in on.items()})
            traces = len(next(iter(on.values()))[1])
            v2 = tuple(eval(expr, env, {k: b[t] for k, (_, b) in on.items()}) for t in range(traces))
        except Exception:
            return None
        return v1, v2

    def follows(self, expr: str, v1, v2) -> bool:
        """Whether a host expression over input dims already gives its value on every trace."""
        got = self.values(expr)
        return (got is not None and isinstance(v2, tuple) and _close(got[0], v1)
                and all(_close(x, v) for x, v in zip(got[1], v2)))

    def find(self, v1, v2, avoid=(), prefer=(), extents=()):
        """An expression over input dims equal to v1 on trace 1 and v2 on trace 2 (or None); of
        several dims that fit, one not named in `avoid` (a mean's divisor is not a dim it keeps).
        `extents`: size expressions tried first, as they are or as reciprocals (the element count
        of the reductions just upstream: group norm's mean divides by C // G * H * W, not a
        product of input dims)."""
        if not _differs(v1, v2):
            return None
        for expr in extents:
            got = self.values(expr)
            if got is None or not isinstance(v1, (int, float)) or not all(isinstance(v, (int, float)) for v in v2):
                continue
            if _close(got[0], v1) and all(_close(x, v) for x, v in zip(got[1], v2)):
                return expr, "int"
            if got[0] and all(got[1]) and _close(1.0 / got[0], v1) and all(_close(1.0 / x, v) for x, v in zip(got[1], v2)):
                return f"1.0 / ({expr})", "float"
        singles = [(pos, d, a, b) for pos, d, a, b in self.dims if _differs(a, b)]
        fits = [self.name(pos, d) for pos, d, a, b in singles if a == v1 and b == v2]
        if fits:
            return next((f for f in fits if f in prefer), next((f for f in fits if f not in avoid), fits[0])), "int"
        for combo, a, b in self._products():
            if a == v1 and b == v2:
                return self._product_name(combo), "int"
        for pos, d, a, b in singles:  # a size divided by a fixed count (channels per group)
            if isinstance(v1, int) and v1 > 0 and a % v1 == 0 and a // v1 > 1 and all(
                    isinstance(v, int) and x % (a // v1) == 0 and x // (a // v1) == v for x, v in zip(b, v2)):
                return f"{self.name(pos, d)} // {a // v1}", "int"
        if isinstance(v1, float) and v1 != 0 and all(v != 0 for v in v2):
            r1 = 1.0 / v1
            for pos, d, a, b in singles:
                if abs(a - r1) < 1e-6 * a and all(abs(x - 1.0 / v) < 1e-6 * x for x, v in zip(b, v2)):
                    return f"1.0 / {self.name(pos, d)}", "float"
            for combo, a, b in self._products():
                if abs(a - r1) < 1e-6 * a and all(abs(x - 1.0 / v) < 1e-6 * x for x, v in zip(b, v2)):
                    return f"1.0 / ({self._product_name(combo)})", "float"
        return None

    def _products(self):
        """Products of two or three input dims (a norm over the last three dims divides by their
        product), as (the dims, value on trace 1, values on the other traces)."""
        for count in (2, 3):
            for combo in itertools.combinations_with_replacement(self.dims, count):
                if not any(_differs(a, b) for _, _, a, b in combo):
                    continue
                value = 1
                values = tuple(1 for _ in combo[0][3])
                for _, _, a, b in combo:
                    value, values = value * a, tuple(x * y for x, y in zip(values, b))
                yield combo, value, values

    def _product_name(self, combo) -> str:
        return "*".join(self.name(pos, d) for pos, d, _, _ in combo)


_MATMULS = {"mm", "addmm", "bmm", "baddbmm"}


def _same_dim_of_source(n1, n2, i: int, rank: int):
    """Dim i of n1 read off the operand it comes from, when that operand's dim has the same sizes
    in both traces (sizes equal by value, HEIGHT == WIDTH or IN == OUT features, stay apart):
    a permute's source dim, a reduction's kept dim, a matmul's rows (mat1) or columns (mat2),
    else the operands' dims as broadcasting aligns them (from the end)."""
    want = (n1.hint[i], n2.hint[i])
    pairs = list(zip(n1.inputs, n2.inputs))
    if not pairs:
        return None

    def dim_of(k, j):
        a, b = pairs[k]
        if 0 <= j < len(a.shape) and (a.hint[j], b.hint[j]) == want and re.search(r"[A-Za-z_]", a.shape[j]):
            return (a.shape[j],)
        return None

    if n1.kind == ir.VIEW and n1.op == "permute":
        return dim_of(0, n1.attrs["dims"][i])
    if n1.kind == ir.REDUCTION:
        kept = [d for d in range(len(pairs[0][0].shape)) if d not in n1.attrs["dims"]]
        j = i if n1.attrs.get("keepdim") else (kept[i] if i < len(kept) else -1)
        return dim_of(0, j)
    if n1.kind == ir.EXTERN and n1.op in _MATMULS:
        a, b = n1.attrs.get("mat1", n1.attrs.get("self")), n1.attrs.get("mat2")
        k = [x for x, _ in pairs].index(b if i == rank - 1 else a) if (a in n1.inputs and b in n1.inputs) else None
        if k is None:
            return None
        src = pairs[k][0]
        return dim_of(k, len(src.shape) - 1 if i == rank - 1 else len(src.shape) - (rank - i))
    if n1.kind == ir.EXTERN and n1.op in ("convolution", "_convolution") and i < 2:
        # (batch, channels): the input's batch, the weight's output channels (transposed: in x groups)
        x, w = n1.attrs.get("input"), n1.attrs.get("weight")
        if i == 1 and n1.attrs.get("transposed"):
            return None
        src = x if i == 0 else w
        return dim_of([a for a, _ in pairs].index(src), 0) if src in n1.inputs else None
    if n1.kind == ir.EXTERN:
        return None
    for k, (a, _) in enumerate(pairs):
        found = dim_of(k, len(a.shape) - (rank - i))
        if found:
            return found
    return None


def _reduced_extents(node, depth: int = 4) -> set:
    """The dims reduced by the reductions just upstream of node (a mean's divisor is one)."""
    out, stack = set(), [(node, 0)]
    while stack:
        n, k = stack.pop()
        if n.kind == ir.REDUCTION:
            src = n.inputs[0]
            out |= {src.shape[d] for d in n.attrs["dims"] if d < len(src.shape)}
            continue
        if k < depth and n.kind in (ir.VIEW, ir.POINTWISE):
            stack.extend((a, k + 1) for a in n.inputs)
    return out


def _reduced_counts(node, depth: int = 4) -> list[str]:
    """Per reduction just upstream of node, the product of its reduced extents (a mean's divisor)."""
    out, stack, seen = [], [(node, 0)], set()
    while stack:
        n, k = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.kind == ir.REDUCTION:
            src = n.inputs[0]
            extents = [src.shape[d] for d in n.attrs["dims"] if d < len(src.shape)]
            if extents:
                out.append("*".join(f"({e})" for e in extents))
            continue
        if k < depth and n.kind in (ir.VIEW, ir.POINTWISE):
            stack.extend((a, k + 1) for a in n.inputs)
    return out


def _close(a, b) -> bool:
    return a == b or (isinstance(a, float) or isinstance(b, float)) and abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def _names_in(shape) -> set:
    return {name for s in shape for name in re.findall(r"[A-Za-z_]\w*", s)}


def same_structure(a: ir.Graph, b: ir.Graph) -> bool:
    return len(a.nodes) == len(b.nodes) and all(x.op == y.op for x, y in zip(a.nodes, b.nodes))


def _fold(g2: ir.Graph, extras) -> None:
    """g2's sizes and numbers become signatures: the tuple of their values over g2 and each extra
    trace (one size constant halved in each), so two dims equal in value on every trace but
    following different constants (BATCH == OUT_CHANNELS) are told apart."""
    graphs = [g2] + list(extras)
    for k, n in enumerate(g2.nodes):
        n.hint = tuple(tuple(g.nodes[k].hint[i] if i < len(g.nodes[k].hint) else None for g in graphs)
                       for i in range(len(n.hint)))
        for key, v in list(n.attrs.items()):
            vals = [g.nodes[k].attrs.get(key) for g in graphs]
            if isinstance(v, Sym) and all(isinstance(x, Sym) for x in vals):
                n.attrs[key] = Sym(v.expr, tuple(x.hint for x in vals))
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
                n.attrs[key] = tuple(vals)


def _ints(sig) -> bool:
    return isinstance(sig, tuple) and all(isinstance(v, int) for v in sig)


def _differs(v1, sig) -> bool:
    return isinstance(sig, tuple) and any(v != v1 for v in sig)


def generalize(g1: ir.Graph, g2: ir.Graph, extras=()) -> int:
    """Re-express in g1 the literals that differ from g2 (and from the `extras`, traces with one
    size constant changed each); returns how many were changed."""
    if not same_structure(g1, g2):
        return 0
    _fold(g2, [g for g in extras if same_structure(g1, g)])
    dims = _Dims(g1, g2)
    changed = 0
    for n1, n2 in zip(g1.nodes, g2.nodes):
        shape = list(n1.shape)
        for i, (s, h1, h2) in enumerate(zip(n1.shape, n1.hint, n2.hint)):
            if _has_literal(s, above=1) and _ints(h2) and _differs(h1, h2) and not dims.holds(s, h2):
                # an input's own dim is its size, whichever other dim has the same values
                if n1.kind == ir.INPUT:
                    found = (dims.name(n1.attrs["position"], i),)
                else:
                    # two dims of one value rarely have the same size: prefer another dim
                    found = _same_dim_of_source(n1, n2, i, len(n1.shape)) or dims.find(h1, h2, avoid=_names_in(shape))
                if found:
                    shape[i] = found[0]
                    changed += 1
        if n1.kind == ir.POOL:
            from .classify import pool_out_shape

            shape = list(pool_out_shape(n1.inputs[0].shape, n1.attrs) or shape)
        for i, (s_, h1, h2) in enumerate(zip(shape, n1.hint, n2.hint)):
            if (_has_literal(s_) and _ints(h2) and _differs(h1, h2) and (h1, h2) in dims.known
                    and not dims.holds(s_, h2)):
                shape[i] = dims.known[(h1, h2)]  # the same size as an earlier node's dim
        if shape != list(n1.shape):
            n1.shape = tuple(shape)
            if "shape" in n1.attrs:
                n1.attrs["shape"] = n1.shape
        for s_, h1, h2 in zip(n1.shape, n1.hint, n2.hint):
            # a size read from the inputs (pooling's output length: (L - 8) // 2 + 1 holds literals)
            if (not _has_literal(s_) or n1.kind == ir.POOL or dims.holds(s_, h2)) and isinstance(h1, int) and _ints(h2) and _differs(h1, h2):
                dims.known.setdefault((h1, h2), s_)
        for key, v1 in list(n1.attrs.items()):
            v2 = n2.attrs.get(key)
            if (isinstance(v1, Sym) and isinstance(v2, Sym) and _has_literal(v1.expr, above=1)
                    and _differs(v1.hint, v2.hint) and not dims.follows(v1.expr, v1.hint, v2.hint)):
                found = dims.find(v1.hint, v2.hint, avoid=_names_in(n1.shape), prefer=_reduced_extents(n1),
                                  extents=_reduced_counts(n1))
                if found:
                    expr = found[0] if found[1] == "int" and isinstance(v1.hint, int) else f"float({found[0]})"
                    sym = Sym(expr, v1.hint)
                    n1.attrs[key] = sym
                    n1.args = [sym if a is v1 else a for a in n1.args]
                    changed += 1
                continue
            if isinstance(v1, (int, float)) and not isinstance(v1, bool) and isinstance(v2, tuple) and _differs(v1, v2):
                found = dims.find(v1, v2, avoid=_names_in(n1.shape), prefer=_reduced_extents(n1),
                                  extents=_reduced_counts(n1))
                if found:
                    expr = found[0] if found[1] == "int" or isinstance(v1, int) else f"float({found[0]})"
                    sym = Sym(expr, v1)
                    n1.attrs[key] = sym
                    n1.args = [sym if (a is v1 or (type(a) is type(v1) and a == v1)) else a for a in n1.args]
                    changed += 1
    return changed
