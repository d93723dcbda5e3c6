"""Statistics of one tensor's rows, read once: reductions of different pointwise functions of the
same tensors whose rows are the same once views are seen through.

conv -> group norm + instance norm of its ReLU reduces y over (C/G, H*W) of an (N, G, C/G, H*W)
view (group norm) and relu(y) over (H, W) of a (1, N*C, H, W) view (instance norm, as torch
decomposes it): two reductions, two reads of y. Both are statistics of y's own (n, c) rows:

- instance norm's reduces the view's source, relu(y) over (H, W), and is viewed back as (N*C,);
- group norm's is taken a channel a row (count, mean and M2 over H*W, Welford), viewed as
  (N, G, C/G), and its channels are combined after (rewrites.split_at), which also makes the
  conv bias a per-row value rather than one an element needs a division for.

Then both reduce tensors of y's shape over dims (2, 3), and the scheduler (lower._row_mates) gives
them one kernel whose column loop accumulates all of them: one read of y. The rewrite applies only
where it brings reductions of two different tensors onto the same rows of the same tensors in
memory; elsewhere each reduction keeps the plan it had.
"""
from __future__ import annotations

from . import ir
from .ir import Node
from .rewrites import hint_prod, split_at
from .views import same_size

# reductions whose value depends only on the set of elements reduced (not an index into them,
# not another node's statistic)
_VALUE_REDUCTIONS = {"sum", "mean", "amax", "amin", "var"}
_LONG_ROW = 1 << 14  # a channel's row shorter than this is not split from its group


def share_row_reductions(graph: ir.Graph) -> None:
    """See the module docstring."""
    groups: dict = {}
    for r in list(graph.nodes):
        form = _row_form(r)
        sources = sources_of(form[0]) if form else None
        if sources is not None:
            src, cut, outer = form
            groups.setdefault((frozenset(sources), tuple(src.shape), cut), []).append((r, src, cut, outer))
    for members in groups.values():
        if len({id(r.inputs[0]) for r, _, _, _ in members}) < 2:
            continue  # one tensor's reductions already share a kernel
        for r, src, cut, outer in members:
            x = r.inputs[0]
            if outer:  # group norm: partials a channel a row, combined over the group after
                added = split_at(graph, r, [d for d in r.attrs["dims"] if d not in outer], outer, {})
                for p in [n for n in added if n.kind == ir.REDUCTION and n.inputs[0] is x]:
                    _onto_source(graph, p, src, cut)
            elif x is not src:
                _onto_source(graph, r, src, cut)


def _row_form(r: Node):
    """(source, cut, outer) when reduction r's rows are the rows of `source`'s dims [cut:], seen
    through a reshape if r reduces one (outer: r's reduced dims left to combine after, when only
    its innermost ones match), else None."""
    if (r.kind != ir.REDUCTION or r.op not in _VALUE_REDUCTIONS or r.attrs.get("split")
            or r.attrs.get("combine") or r.attrs.get("keepdim")):
        return None
    x = r.inputs[0]
    big = [d for d, size in enumerate(x.shape) if size != "1"]
    reduced = [d for d in big if d in r.attrs["dims"]]
    if not reduced or reduced != big[len(big) - len(reduced):]:
        return None  # a kept dim after a reduced one
    if x.kind != ir.VIEW or x.op != "view" or not isinstance(x.inputs[0], Node):
        if reduced != list(range(reduced[0], len(x.shape))):
            return None
        return x, reduced[0], []  # x's own rows
    src = x.inputs[0]
    for first in range(len(reduced)):  # the whole reduced run first, then its innermost parts
        run = reduced[first:]
        for cut in range(len(src.shape) - 1, 0, -1):
            if same_size([x.shape[d] for d in run], list(src.shape[cut:])):
                outer = reduced[:first]
                if (outer and hint_prod(x, run) < _LONG_ROW) or any(size == "1" for size in src.shape[cut:]):
                    return None
                return src, cut, outer
    return None


def _onto_source(graph: ir.Graph, r: Node, src: Node, cut: int) -> None:
    """r, a reduction of a reshape of src over src's dims [cut:], becomes a reduction of src
    itself, viewed back as r's shape (a reshape keeps the element count, so equal trailing sizes
    make the leading ones equal too)."""
    on_src = Node(name=f"{r.name}_rows", op=r.op, kind=ir.REDUCTION, args=[src],
                  attrs={**r.attrs, "dims": list(range(cut, len(src.shape)))},
                  shape=tuple(src.shape[:cut]), hint=tuple(src.hint[:cut]), dtype=r.dtype)
    graph.nodes.insert(graph.nodes.index(r), on_src)
    r.op, r.kind, r.args, r.attrs = "view", ir.VIEW, [on_src], {"shape": r.shape}


def sources_of(x: Node, known=()) -> set | None:
    """The tensors in memory x is computed from (ids: inputs, vendor results, `known` nodes),
    through pointwise ops and views; None when a reduction or anything else lies between."""
    out, stack, seen = set(), [x], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n in known or n.kind in (ir.INPUT, ir.EXTERN):
            out.add(id(n))
        elif n.kind in (ir.POINTWISE, ir.VIEW, ir.CONST):
            stack.extend(n.inputs)
        else:
            return None
    return out
