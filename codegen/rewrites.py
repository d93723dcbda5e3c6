"""Graph rewrites before scheduling, for fewer passes over big tensors.

- `online_softmax`: sum(exp(y - amax(y))) becomes one `sumexp` reduction, which a looped or split
  kernel computes online with the maximum (softmax, log-softmax, cross-entropy read y once).
- `split_reductions`: reductions with few long rows (or a strided layout) become per-chunk partials
  plus a small combine (variances as Welford count/mean/M2 triples, sumexp as (max, sum) pairs);
  the combine is later inlined into whichever row kernel needs it (see lower.py).
"""
from __future__ import annotations

import torch

from . import ir
from .scope import _prod
from .ir import Node


def next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def online_softmax(graph: ir.Graph) -> None:
    """sum(exp(y - amax(y))) over the dims of the amax (softmax, log-softmax, cross-entropy)
    becomes sumexp(y): the same value, which a looped or split kernel computes online together
    with the maximum (a running maximum and a rescaled running sum), reading y once."""
    for s in graph.nodes:
        if s.kind != ir.REDUCTION or s.op != "sum" or not s.dtype.is_floating_point:
            continue
        e = s.inputs[0]
        if e.kind != ir.POINTWISE or e.op != "exp" or len(e.inputs) != 1:
            continue
        d = e.inputs[0]
        if d.kind != ir.POINTWISE or d.op != "sub" or d.attrs.get("alpha", 1) not in (1, None):
            continue
        y, mb = d.attrs.get("self"), d.attrs.get("other")
        if not isinstance(y, Node) or not isinstance(mb, Node) or tuple(y.shape) != tuple(e.shape):
            continue
        a = mb
        while a.kind == ir.VIEW and a.op in ("view", "expand", "broadcast_in_dim"):
            a = a.inputs[0]
        dims = sorted(s.attrs["dims"])
        if (a.kind != ir.REDUCTION or a.op != "amax" or a.inputs[0] is not y or sorted(a.attrs["dims"]) != dims
                or tuple(s.inputs[0].shape) != tuple(y.shape)):
            continue
        # the max must be broadcast back along the reduced dims only, kept dims in order
        k = len(y.shape) - len(mb.shape)
        aligned = ["1"] * k + list(mb.shape)
        kept = [y.shape[i] for i in range(len(y.shape)) if i not in dims]
        if k < 0 or any(aligned[i] != "1" for i in dims) or [aligned[i] for i in range(len(y.shape)) if i not in dims] != kept:
            continue
        s.op = "sumexp"
        s.args = [y]
        s.attrs = {"dims": list(s.attrs["dims"]), "keepdim": s.attrs.get("keepdim", False), "max": a, "orig": e}


SPLITTABLE = {"sum", "mean", "amax", "amin", "prod", "any", "all", "var", "sumexp"}


def split_reductions(graph: ir.Graph, tun: dict) -> None:
    """Reductions that one program per row would leave the GPU idle on, or would read with a
    strided walk, become partials + a final combine:

    - chunk split (few long rows: a loss, a norm of a whole tensor, group norm's groups):
      partial = reduce(x in SPLIT chunks per row), a [rows, SPLIT] buffer;
    - layout split (reduced dims not all innermost, e.g. batch norm's (N, H, W)): partial =
      reduce(x over the innermost reduced dims), contiguous rows; the rest is combined after.
      A reduction to one value of something computed from per-row values (a loss over
      log_softmax's row statistics) splits the same way at the last dim.

    The final combine is a small reduction over the partials (marked "combine"): a row kernel that
    needs it loads its rows' partials and combines them in place (emit.Kernel.combine)."""
    target = tun["reduce.split_programs"]
    done: dict = {}  # id(reduction) -> (partial, final) of how it was split
    for r in list(graph.nodes):
        if r.kind != ir.REDUCTION or r.op not in SPLITTABLE or r.attrs.get("split") or r.attrs.get("combine"):
            continue
        if target <= 0:
            continue
        if not _layout_split(graph, r, target, done):
            _split_one(graph, r, target, done)


def _pw(name: str, op: str, a, b, like: Node) -> Node:
    """A pointwise binary node shaped like `like` (fp32)."""
    return Node(name=name, op=op, kind=ir.POINTWISE, args=[a, b], attrs={"self": a, "other": b},
                shape=tuple(like.shape), hint=tuple(like.hint), dtype=torch.float32)


def _split_one(graph: ir.Graph, r: Node, target: int, done: dict) -> None:
    """Chunk split of reduction r when it has few long rows (see _split_reductions)."""
    x = r.inputs[0]
    dims = r.attrs["dims"]
    kept = [d for d in range(len(x.shape)) if d not in dims]
    n_rows, n_cols = hint_prod(x, kept), hint_prod(x, dims)
    # at benchmark sizes (GBs), a program for every 2**19 elements or so (H100, group norm over
    # (112, 64, 512, 512): 896 rows of 2M unsplit, 9.16 ms; in 4 chunks each, 7.38 ms)
    target = max(target, (n_rows * n_cols) >> 19)
    if n_rows * 2 > target or n_cols < 16384:  # enough rows to fill the GPU already
        return
    split = min(next_pow2(-(-target // n_rows)), max(1, n_cols // 2048))
    if split < 2:
        return
    split = 1 << (split.bit_length() - 1)
    kept_shape = tuple(x.shape[d] for d in kept)
    kept_hint = tuple(x.hint[d] for d in kept)
    p_shape, p_hint = kept_shape + (str(split),), kept_hint + (split,)
    n = ir.Sym(_prod([x.shape[d] for d in dims]), n_cols)

    def partial(op, suffix="partial", dtype=torch.float32):
        return Node(name=f"{r.name}_{suffix}", op=op, kind=ir.REDUCTION, args=[x],
                    attrs={"dims": list(dims), "keepdim": False, "split": split},
                    shape=p_shape, hint=p_hint, dtype=dtype)

    def final(op, q, name, dtype=torch.float32):
        return Node(name=name, op=op, kind=ir.REDUCTION, args=[q],
                    attrs={"dims": [len(kept)], "keepdim": False, "combine": True},
                    shape=kept_shape, hint=kept_hint, dtype=dtype)

    if r.op == "sumexp":
        info = done.get(id(r.attrs["max"]))
        if info is None or info[0].attrs.get("split") != split:
            return  # its maximum was not split the same way: keep the online looped kernel
        new, value = _combine_sumexp(r, partial("sumexp"), info, kept_shape, kept_hint, final)
    elif r.op == "var":
        new, value = _combine_var(r, partial, final, kept_shape, kept_hint, n, [len(kept)])
    else:
        acc = torch.int64 if not r.dtype.is_floating_point and r.op in ("sum", "prod") else (
            r.dtype if r.op in ("any", "all") else torch.float32)
        new, value = _combine_plain(r, partial, final, n, done, acc)
    _replace(graph, r, value, new)


def _combine_plain(r: Node, partial, final, n: ir.Sym, done: dict, acc=torch.float32):
    """Partials and their combine for sum / mean / max / min / prod / any / all: a mean sums its
    partials and divides by the count once."""
    op = "sum" if r.op == "mean" else r.op
    p = partial(op, dtype=acc)
    f = final(op, p, f"{r.name}_final", dtype=r.dtype if r.op != "mean" else torch.float32)
    new, value = [p, f], f
    done[id(r)] = (p, f)
    if r.op == "mean":
        value = _pw(f"{r.name}_mean", "div", f, n, f)
        value.dtype = r.dtype
        new.append(value)
    return new, value


def _replace(graph: ir.Graph, r: Node, value: Node, new: list) -> None:
    # r itself becomes a view of the combined value: its users and shape stay as they were
    r.op, r.kind, r.args, r.attrs = "view", ir.VIEW, [value], {"shape": r.shape}
    i = graph.nodes.index(r)
    graph.nodes[i:i] = new


def _combine_sumexp(r: Node, p: Node, max_split, kept_shape, kept_hint, final):
    """sum(exp(x - M)) from chunks' (m_p, s_p = sum(exp(x - m_p))): sum_p s_p * exp(m_p - M)."""
    m_p, m = max_split
    mb = Node(name=f"{r.name}_max_b", op="view", kind=ir.VIEW, args=[m], attrs={"shape": kept_shape + ("1",)},
              shape=kept_shape + ("1",), hint=kept_hint + (1,), dtype=torch.float32)
    diff = _pw(f"{r.name}_shift", "sub", m_p, mb, p)
    scale = Node(name=f"{r.name}_rescale", op="exp", kind=ir.POINTWISE, args=[diff], attrs={"self": diff},
                 shape=p.shape, hint=p.hint, dtype=torch.float32)
    term = _pw(f"{r.name}_rescaled", "mul", p, scale, p)
    f = final("sum", term, f"{r.name}_final")
    return [p, mb, diff, scale, term, f], f


def _combine_var(r: Node, partial, final, kept_shape, kept_hint, n: ir.Sym, pdims):
    """var from partials' Welford triples (count n_p, mean_p, M2_p):
    mean = sum(n_p mean_p) / n, M2 = sum(M2_p + n_p (mean_p - mean)^2), var = M2 / (n - correction)."""
    cnt, mean_p, m2_p = partial("wcount", "count_partial"), partial("wmean", "mean_partial"), partial("wm2", "m2_partial")
    weighted = _pw(f"{r.name}_weighted", "mul", cnt, mean_p, cnt)
    total = final("sum", weighted, f"{r.name}_sum_final")
    mean = _pw(f"{r.name}_mean", "div", total, n, total)
    b_shape = tuple("1" if i in pdims else s for i, s in enumerate(cnt.shape))
    b_hint = tuple(1 if i in pdims else h for i, h in enumerate(cnt.hint))
    mean_b = Node(name=f"{r.name}_mean_b", op="view", kind=ir.VIEW, args=[mean], attrs={"shape": b_shape},
                  shape=b_shape, hint=b_hint, dtype=torch.float32)
    dev = _pw(f"{r.name}_dev", "sub", mean_p, mean_b, cnt)
    sq = _pw(f"{r.name}_dev2", "mul", dev, dev, cnt)
    wsq = _pw(f"{r.name}_wdev2", "mul", cnt, sq, cnt)
    term = _pw(f"{r.name}_m2_terms", "add", m2_p, wsq, cnt)
    m2 = final("sum", term, f"{r.name}_m2_final")
    corr = r.attrs.get("correction", 1.0)
    denom = ir.Sym(f"({n.expr}) - {float(corr)}", n.hint - corr)
    var = _pw(f"{r.name}_var", "div", m2, denom, m2)
    var.dtype = r.dtype
    return [cnt, mean_p, m2_p, weighted, total, mean, mean_b, dev, sq, wsq, term, m2, var], var


def _layout_split(graph: ir.Graph, r: Node, target: int, done: dict) -> bool:
    """Layout split of r (see _split_reductions) when its reduced dims end with the innermost
    ones but also include outer dims (batch norm: (N, H, W) of NCHW): the partial reduces the
    contiguous innermost run, one row per (outer, kept) index, and a final combines the outer
    dims. Without it, every element's address needs divisions and the rows are walked with a
    stride."""
    x = r.inputs[0]
    nd = len(x.shape)
    dims = sorted(r.attrs["dims"])
    inner = []
    d = nd - 1
    while d in dims:
        inner.insert(0, d)
        d -= 1
    full = len(inner) == nd
    if full and nd > 1 and _reads_per_row(x):
        # a reduction to one value of something computed from per-row values (a loss over
        # log_softmax's row statistics): reduce each row, then the rows, and each element finds
        # its row's values without a division
        inner = [nd - 1]
    outer = [d for d in dims if d not in inner and x.shape[d] != "1"]
    if not inner or not outer or r.op not in ("sum", "mean", "amax", "amin", "var"):
        return False
    rest = [d for d in range(nd) if d not in inner]
    # the combine of a reduction to one value is its own small kernel, whatever its count
    if hint_prod(x, inner) < 1024 or hint_prod(x, rest) * 2 <= target or (hint_prod(x, outer) > 256 and not full):
        return False
    split_at(graph, r, inner, outer, done)
    return True


def split_at(graph: ir.Graph, r: Node, inner: list, outer: list, done: dict) -> list:
    """r as partials over its `inner` dims (one row per index of the others) and a combine of
    the partials over its `outer` dims; returns the nodes added (the partials among them)."""
    x = r.inputs[0]
    nd = len(x.shape)
    dims = sorted(r.attrs["dims"])
    rest = [d for d in range(nd) if d not in inner]
    p_shape = tuple(x.shape[d] for d in rest)
    p_hint = tuple(x.hint[d] for d in rest)
    pdims = [i for i, d in enumerate(rest) if d in outer]
    kept_shape = tuple(x.shape[d] for d in rest if d not in outer)
    kept_hint = tuple(x.hint[d] for d in rest if d not in outer)
    n = ir.Sym(_prod([x.shape[d] for d in dims]), hint_prod(x, dims))

    def partial(op, suffix="partial", dtype=torch.float32):
        return Node(name=f"{r.name}_{suffix}", op=op, kind=ir.REDUCTION, args=[x],
                    attrs={"dims": list(inner), "keepdim": False}, shape=p_shape, hint=p_hint, dtype=dtype)

    def final(op, q, name, dtype=torch.float32):
        return Node(name=name, op=op, kind=ir.REDUCTION, args=[q],
                    attrs={"dims": list(pdims), "keepdim": False, "combine": True},
                    shape=kept_shape, hint=kept_hint, dtype=dtype)

    if r.op == "var":
        new, value = _combine_var(r, partial, final, kept_shape, kept_hint, n, pdims)
    else:
        new, value = _combine_plain(r, partial, final, n, done)
    _replace(graph, r, value, new)
    return new


def _reads_per_row(x: Node) -> bool:
    """Whether x is computed from a value broadcast along its last dim (a row's statistic)."""
    stack, seen = [x], set()
    while stack:
        n = stack.pop()
        if id(n) in seen or n.kind not in (ir.POINTWISE, ir.VIEW):
            continue
        seen.add(id(n))
        for a in n.inputs:
            if len(a.shape) == len(x.shape) and a.shape[-1] == "1" != x.shape[-1] and any(s != "1" for s in a.shape):
                return True
            stack.append(a)
    return False


def hint_prod(node: Node, dims) -> int:
    n = 1
    for d in dims:
        h = node.hint[d]
        n *= int(h) if isinstance(h, int) else 1024
    return n
