"""Views as index arithmetic (permute, slice, flip, cat, pad, gather...) for emit.Kernel: a view's
value at an index is its source's value at another index."""
from __future__ import annotations

import sympy

from . import ir
from .ir import Node, Unsupported
from .pointwise import compute_type, literal
from .scope import TL_DTYPE, _deps, split_key


def dim_groups(view: Node, src: Node) -> list[tuple[list[int], list[int]]] | None:
    """A view's dims and its source's in groups of equal size ((N*C, H*W) and (N, C, H, W): two
    groups), or None where the sizes cannot be shown equal group by group."""
    out = [d for d, s in enumerate(view.shape) if s != "1"]
    src_dims = [d for d, s in enumerate(src.shape) if s != "1"]
    groups, i, j = [], 0, 0
    while i < len(out) and j < len(src_dims):
        group = ([out[i]], [src_dims[j]])
        size_out, size_src = int(view.hint[out[i]]), int(src.hint[src_dims[j]])
        i, j = i + 1, j + 1
        while size_out != size_src:  # the traced sizes say which side to widen ...
            if size_out < size_src and i < len(out):
                group[0].append(out[i])
                size_out, i = size_out * int(view.hint[out[i]]), i + 1
            elif size_src < size_out and j < len(src_dims):
                group[1].append(src_dims[j])
                size_src, j = size_src * int(src.hint[src_dims[j]]), j + 1
            else:
                return None
        # ... the symbolic sizes must agree at every size, not only the traced one
        if not same_size([view.shape[d] for d in group[0]], [src.shape[d] for d in group[1]]):
            return None
        groups.append(group)
    return groups if i == len(out) and j == len(src_dims) else None


def same_size(a: list[str], b: list[str]) -> bool:
    if a == b:
        return True
    try:
        return sympy.expand(_product(a) - _product(b)) == 0
    except (sympy.SympifyError, TypeError, SyntaxError):
        return False


def _product(sizes: list[str]):
    out = sympy.Integer(1)
    for s in sizes:
        out *= sympy.sympify(s)
    return out


class IndexViews:
    """The view methods of emit.Kernel (a mixin)."""

    def view(self, node: Node, idx):
        op, a = node.op, node.attrs
        src = node.inputs[0]
        if op == "view":
            dims_out = [(e, s) for (e, s) in zip(idx, node.shape) if s != "1"]
            src_big = [s for s in src.shape if s != "1"]
            if [s for _, s in dims_out] == src_big:
                it = iter([e for e, _ in dims_out])
                return self.value(src, [("0", "") if s == "1" else next(it) for s in src.shape])
            lin, deps = self.linear(idx, node.shape)
            if src in self.materialized or src.kind == ir.INPUT or src.kind == ir.EXTERN:
                return self.load_linear(src, lin, deps)
            groups = dim_groups(node, src)
            # by groups where that parts a row kernel's per-row dims from its per-column ones, or
            # where every dim maps to one dim (sizes the trace spelled two ways)
            if groups is None or len(groups) == 1 or (
                    len({_deps(*[idx[d][1] for d in out_dims]) for out_dims, _ in groups}) < 2
                    and any(len(out_dims) > 1 or len(src_dims) > 1 for out_dims, src_dims in groups)):
                lin_v = self.assign(lin, "lin")
                out = self.delinearize(lin_v, src.shape, deps, "i")
                self.split_from[split_key([e for e, _ in out], src.shape)] = self.normal(lin)
                return self.value(src, out)
            # dims that merge or split apart from each other keep their own index: a row kernel's
            # (batch, channel) stay per row, not divided out of every element's flat index
            out = [("0", "")] * len(src.shape)
            for out_dims, src_dims in groups:
                part, part_deps = self.linear([idx[d] for d in out_dims], [node.shape[d] for d in out_dims])
                if len(src_dims) == 1:
                    out[src_dims[0]] = (part, part_deps)
                    continue
                sizes = [src.shape[d] for d in src_dims]
                for d, e in zip(src_dims, self.delinearize(self.assign(part, "lin"), sizes, part_deps, "i")):
                    out[d] = e
            return self.value(src, out)
        if op == "broadcast_in_dim":
            out = [("0", "")] * len(src.shape)
            for i, d in enumerate(a["dims"]):
                out[i] = ("0", "") if src.shape[i] == "1" else idx[d]
            return self.value(src, out)
        if op == "expand":
            return self.value(src, self.broadcast(src, node.shape, idx))
        if op == "permute":
            out = [None] * len(src.shape)
            for i, d in enumerate(a["dims"]):
                out[d] = idx[i]
            return self.value(src, out)
        if op == "slice":
            d = a["dim"]
            e, dep = idx[d]
            start, step = a["start"], a["step"]
            expr = e if step == 1 else f"{e} * {literal(step)}"
            if start not in (0, None):
                expr = f"({literal(start)} + {expr})"
            out = list(idx)
            out[d] = (self.assign(expr, "i") if expr != e else e, dep)
            return self.value(src, out)
        if op == "select":
            out = list(idx)
            out.insert(a["dim"], (literal(a["index"]), ""))
            return self.value(src, out)
        if op == "flip":
            out = list(idx)
            for d in a["dims"]:
                e, dep = idx[d]
                out[d] = (self.assign(f"({src.shape[d]} - 1 - {e})", "i"), dep)
            return self.value(src, out)
        if op == "cat":
            d = a["dim"]
            e, dep = idx[d]
            parts = node.inputs
            offset = "0"
            vals = []
            for p in parts:
                size = p.shape[d]
                local = e if offset == "0" else f"({e} - ({offset}))"
                clamped = self.assign(f"tl.minimum(tl.maximum({local}, 0), {size} - 1)", "i")
                pidx = list(self.broadcast(p, node.shape, idx))
                pidx[d] = (clamped, dep)
                v, vd = self.value(p, pidx)
                offset = size if offset == "0" else f"{offset} + {size}"
                vals.append((v, vd, offset))
            out, deps = vals[-1][0], vals[-1][1]
            for v, vd, end in reversed(vals[:-1]):
                out = self.assign(f"tl.where({e} < ({end}), {v}, {out})", "v")
                deps = _deps(deps, vd, dep)
            return out, deps
        if op == "pad":
            pad = a["pad"]
            out = list(idx)
            valid = []
            r = len(src.shape)
            for j in range(len(pad) // 2):
                d = r - 1 - j
                left = pad[2 * j]
                e, dep = idx[d]
                s = f"({e} - {literal(left)})" if left != 0 else e
                valid.append(f"({s} >= 0) & ({s} < {src.shape[d]})")
                out[d] = (self.assign(f"tl.minimum(tl.maximum({s}, 0), {src.shape[d]} - 1)", "i"), dep)
            v, deps = self.value(src, out)
            fill = literal(float(a["value"]) if node.dtype.is_floating_point else a["value"])
            return self.assign(f"tl.where({' & '.join(valid)}, {v}, {fill})", "v"), _deps(deps, *[d for _, d in idx])
        if op == "gather":
            d = a["dim"]
            index_node = node.inputs[1]
            iv, idep = self.value(index_node, idx)
            out = list(idx)
            out[d] = (iv, idep)
            return self.value(src, out)
        if op == "index_select":
            d = a["dim"]
            iv, idep = self.value(node.inputs[1], [idx[d]])
            out = list(idx)
            out[d] = (iv, idep)
            return self.value(src, out)
        raise Unsupported(f"unsupported: aten.{op}")

    def load_linear(self, node, lin, deps):
        self.flat_reads.add(node)
        ptr = self.ptr(node)
        mask = self.mask(deps)
        expr = f"tl.load({ptr} + {lin})" if mask is None else f"tl.load({ptr} + {lin}, mask={mask}, other=0)"
        ct = compute_type(node.dtype)
        if TL_DTYPE.get(node.dtype) != ct or node.dtype.is_floating_point:
            expr += f".to({ct})"  # fp16/bf16 math happens in fp32
        return self.assign(expr, "x"), deps
