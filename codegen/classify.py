"""Op classes and the conversion of one traced ATen call into a classified IR node.

Every op the embedded generator knows is in one of the tables below (pointwise formulas are in
codegen.pointwise, which owns that table); anything else is `Unsupported("unsupported: aten.<op>")`.
"""
from __future__ import annotations

import torch

from . import ir, pointwise
from .ir import Sym, Unsupported

# The one table of ops the extern templates serve (by ATen name): codegen.extern.ops builds its
# op sets from it, capture keeps them whole (their decompositions removed, DECOMPOSED_EXTERN
# aside) and classifies them EXTERN.
TEMPLATE_OPS = {
    "matmul": {"linear", "matmul", "mm", "bmm", "addmm", "mv", "einsum", "baddbmm"},
    "attention": {"scaled_dot_product_attention"},
    # conv_transpose2d: cuDNN runs it channels-last in half the time (codegen.extern.conv_nhwc); the
    # 1-D and 3-D ones gain nothing there and keep the core schedule's tiled epilogue (codegen.hybrid)
    "conv": {"conv1d", "conv2d", "conv3d", "convolution", "conv_transpose2d"},
    "triangle": {"tril", "triu"},
}
# Composites torch decomposes into template ops (matmul -> mm/bmm, linear -> addmm ...).
DECOMPOSED_EXTERN = {"matmul", "linear", "einsum", "tensordot", "triu", "tril", "diag", "diag_embed", "diagonal"}
EXTERN_OPS = set().union(*TEMPLATE_OPS.values()) | {
    "mm", "bmm", "addmm", "baddbmm", "mv", "dot", "convolution", "_convolution", "matmul",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention",
    "_scaled_dot_product_cudnn_attention", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "einsum", "tensordot", "linear", "triu", "tril", "diag", "diag_embed",
    "diagonal",
}

POINTWISE_OPS = pointwise.OPS
REDUCTION_OPS = {"sum", "amax", "amin", "prod", "argmax", "argmin", "max", "min", "any", "all",
                 "var", "mean"}
SCAN_OPS = {"cumsum", "cumprod"}
VIEW_OPS = {"view", "_unsafe_view", "reshape", "squeeze", "unsqueeze", "permute", "expand",
            "slice", "select", "flip", "cat", "constant_pad_nd", "as_strided", "broadcast_in_dim",
            "gather", "transpose", "t", "unflatten", "flatten", "roll", "repeat", "narrow",
            "index_select", "split_with_sizes", "split", "unbind", "stack", "index"}
POOL_OPS = {"max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool2d", "avg_pool3d",
            "max_pool1d_with_indices"}
CONST_OPS = {"full", "scalar_tensor", "zeros", "ones", "full_like", "zeros_like", "ones_like",
             "arange", "iota"}



def _printer():
    import sympy
    from sympy.printing.precedence import PRECEDENCE
    from torch.utils._sympy.printers import PythonPrinter

    def negative_part(numerator) -> bool:
        """Whether a size term of the numerator enters with a negative coefficient. Otherwise only
        a constant can make it negative, and sympy leaves one below the divisor: the numerator is
        then negative only where the op's sizes are invalid ((H - 3) // 2 + 1, H < 3)."""
        return any(term.free_symbols and term.as_coeff_Mul()[0] < 0 for term in sympy.Add.make_args(numerator))

    class FloorSafePrinter(PythonPrinter):
        """Size expressions whose `//` and `%` mean Python's (floor) inside Triton kernels too,
        where integer division and remainder truncate toward zero. A numerator with a size
        subtracted can be negative at valid sizes: public MobileNetV1's last feature map, its
        kernel sizes read from the weights, is 10 + (inner - k9 - ... - k12) // 2, which came out 8
        in its kernels for 7, and a kernel stored past its output. Such a numerator is brought to
        a multiple of the divisor first (x - x mod d, the remainder made nonnegative), which
        divides exactly under either rule."""

        def _floor_mod(self, x: str, d: str) -> str:
            return f"(({x} % {d} + {d}) % {d})"

        def _print_FloorDiv(self, expr):
            if not negative_part(expr.args[0]):
                return super()._print_FloorDiv(expr)
            x, d = (self.parenthesize(arg, PRECEDENCE["Atom"] - 0.5) for arg in expr.args)
            return f"(({x} - {self._floor_mod(x, d)}) // {d})"

        def _print_PythonMod(self, expr):
            if not negative_part(expr.args[0]):
                return super()._print_PythonMod(expr)
            x, d = (self.parenthesize(arg, PRECEDENCE["Atom"] - 0.5) for arg in expr.args)
            return self._floor_mod(x, d)

    return FloorSafePrinter()


def _size_str(s) -> str:
    if isinstance(s, int):
        return str(s)
    if isinstance(s, torch.SymInt):
        expr = s.node.expr
        try:
            return str(int(expr))
        except TypeError:
            return _printer().doprint(expr)
    return str(s)


def _hint(s):
    if isinstance(s, (torch.SymInt, torch.SymFloat)):
        return s.node.hint if s.node.hint is not None else s.node.expr
    return s


def _sym(v):
    """A SymInt/SymFloat -> Sym (host expression); plain numbers pass through."""
    if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        expr = v.node.expr
        try:
            return int(expr) if isinstance(v, torch.SymInt) else float(expr)
        except (TypeError, ValueError):
            pass
        text = _printer().doprint(expr)
        if isinstance(v, torch.SymFloat):
            text = text.replace("torch.sym_float(", "float(")
        return Sym(text, _hint(v))
    return v


def _norm_dims(dims, rank):
    if dims is None:
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    dims = [d % rank if rank else 0 for d in dims]
    return sorted(set(dims)) if dims else list(range(rank))



def _ident(name: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return name if name and not name[0].isdigit() else "t_" + name


def _convert(new, name, op, ns, target, b, val, fxn):
    """One ATen call -> one IR node (attrs normalised)."""
    first = next(iter(b.values()), None)
    if op in EXTERN_OPS:
        return new(name, op, ir.EXTERN, list(b.values()), dict(b), val, target)
    if op in CONST_OPS:
        if op == "arange" or op == "iota":
            return new(name, "arange", ir.CONST, [], {"start": b.get("start", 0) or 0, "step": b.get("step", 1) or 1}, val, target)
        fill = {"zeros": 0, "zeros_like": 0, "ones": 1, "ones_like": 1}.get(op)
        if fill is None:
            fill = b.get("fill_value", b.get("s"))
        return new(name, "full", ir.CONST, [fill], {"value": fill}, val, target)
    if op in POINTWISE_OPS:
        return new(name, op, ir.POINTWISE, list(b.values()), dict(b), val, target)
    if op in REDUCTION_OPS:
        x = b.get("self", b.get("inp", b.get("a", first)))
        xr = len(x.shape)
        dims = b.get("dim", b.get("dims"))
        if op in ("argmax", "argmin") and dims is None:
            dims_l = list(range(xr))
        else:
            dims_l = _norm_dims(dims if dims != [] else None, xr)
        keep = bool(b.get("keepdim", False))
        if ns == "prims":
            keep = False
        if op in ("max", "min"):
            op = "amax" if op == "max" else "amin"
            if isinstance(fxn.meta.get("val"), (tuple, list)):  # max.dim -> (values, indices)
                v = new(name, op, ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
                i = new(name + "_idx", "argmax" if op == "amax" else "argmin", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, fxn.meta["val"][1], target)
                return (v, i)
        if op == "var":
            corr = b.get("correction", 1)
            if corr is None:
                corr = 1 if b.get("unbiased", True) is not False else 0
            return new(name, "var", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep, "correction": float(corr)}, val, target)
        if op == "mean":
            return new(name, "mean", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
        if op in ("argmax", "argmin") and len(dims_l) != 1 and xr > 1:
            flat_node = new(name + "_flat", "view", ir.VIEW, [x], {"shape": ("*".join(f"({s})" for s in x.shape),)},
                            torch.empty([x.numel_hint], dtype=x.dtype, device="meta"))
            flat_node.shape = ("*".join(f"({s})" for s in x.shape),)
            flat_node.attrs["shape"] = flat_node.shape
            return new(name, op, ir.REDUCTION, [flat_node], {"dims": [0], "keepdim": False}, val, target)
        return new(name, op, ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
    if op in SCAN_OPS:
        x = b["self"]
        return new(name, op, ir.SCAN, [x], {"dim": b["dim"] % max(1, len(x.shape))}, val, target)
    if op in POOL_OPS:
        x = b["self"]
        nd = {"1d": 1, "2d": 2, "3d": 3}[op.split("_")[1][-2:] if "with" in op else op[-2:]]
        k = list(b["kernel_size"]) * (nd if len(b["kernel_size"]) == 1 else 1)
        stride = list(b.get("stride") or k)
        stride = stride * (nd if len(stride) == 1 else 1)
        pad = list(b.get("padding") or [0]) * 1
        pad = pad * (nd if len(pad) == 1 else 1)
        dil = list(b.get("dilation") or [1])
        dil = dil * (nd if len(dil) == 1 else 1)
        if b.get("ceil_mode"):
            pass  # output size already in val.shape; windows past the edge are masked
        attrs = {"nd": nd, "kernel": k, "stride": stride, "padding": pad, "dilation": dil,
                 "mode": "max" if op.startswith("max") else "avg",
                 "count_include_pad": bool(b.get("count_include_pad", True)),
                 "divisor_override": b.get("divisor_override")}
        attrs["ceil_mode"] = bool(b.get("ceil_mode"))
        node = new(name, "pool", ir.POOL, [x], attrs, val, target)
        shape = pool_out_shape(x.shape, attrs)
        if shape is not None:
            node.shape = shape
        return node
    if op in VIEW_OPS:
        return _convert_view(new, name, op, ns, target, b, val)
    raise Unsupported(f"unsupported: {ns}.{op}")


def pool_out_shape(x_shape, attrs) -> tuple | None:
    """A pooling output's size as a formula of the input's (floor mode), not a traced constant."""
    if attrs.get("ceil_mode"):
        return None
    nd = attrs["nd"]
    shape = list(x_shape[: len(x_shape) - nd])
    for j in range(nd):
        size = x_shape[len(x_shape) - nd + j]
        k, st, p, d = attrs["kernel"][j], attrs["stride"][j], attrs["padding"][j], attrs["dilation"][j]
        extra = 2 * p - d * (k - 1) - 1
        if size.isdigit():
            shape.append(str((int(size) + extra) // st + 1))
        else:
            span = f"{size} + {extra}" if extra >= 0 else f"{size} - {-extra}"
            shape.append(f"({span}) // {st} + 1" if st != 1 else f"{span} + 1")
    return tuple(shape)


def _convert_view(new, name, op, ns, target, b, val):
    x = b.get("self", b.get("a", b.get("input")))
    if op in ("view", "_unsafe_view", "reshape", "as_strided", "unflatten", "flatten"):
        if op == "as_strided":
            node = new(name, "view", ir.VIEW, [x], {}, val, target)
            # only the contiguous form (a reshape) is index math we can do without strides
            stride = b["stride"]
            expect = 1
            ok = True
            for s, st in zip(reversed(list(val.shape)), reversed(list(stride))):
                if _size_str(s) != "1" and str(_sym(st)) != str(_sym(expect)):
                    ok = False
                expect = expect * s
            if not ok or b.get("storage_offset"):
                raise Unsupported("unsupported: aten.as_strided (non-contiguous)")
            node.attrs["shape"] = node.shape
            return node
        node = new(name, "view", ir.VIEW, [x], {}, val, target)
        node.attrs["shape"] = node.shape
        return node
    if op == "broadcast_in_dim":
        return new(name, "broadcast_in_dim", ir.VIEW, [x], {"dims": list(b["broadcast_dimensions"])}, val, target)
    if op == "squeeze" or op == "unsqueeze":
        node = new(name, "view", ir.VIEW, [x], {}, val, target)
        node.attrs["shape"] = node.shape
        node.attrs["squeeze"] = True
        return node
    if op == "permute":
        return new(name, "permute", ir.VIEW, [x], {"dims": [d % len(x.shape) for d in b["dims"]]}, val, target)
    if op in ("transpose", "t"):
        r = len(x.shape)
        d0, d1 = (b.get("dim0", 0) % max(r, 1), b.get("dim1", 1) % max(r, 1)) if op == "transpose" else (0, 1 if r > 1 else 0)
        perm = list(range(r))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return new(name, "permute", ir.VIEW, [x], {"dims": perm}, val, target)
    if op == "expand":
        return new(name, "expand", ir.VIEW, [x], {}, val, target)
    if op == "slice":
        dim = b["dim"] % len(x.shape)
        start = b.get("start") or 0
        step = b.get("step") or 1
        if isinstance(start, int) and start < 0:
            start = Sym(f"({x.shape[dim]}) + ({start})", x.hint[dim] + start)
        return new(name, "slice", ir.VIEW, [x], {"dim": dim, "start": start, "step": step}, val, target)
    if op == "narrow":
        dim = b["dim"] % len(x.shape)
        return new(name, "slice", ir.VIEW, [x], {"dim": dim, "start": b["start"], "step": 1}, val, target)
    if op == "select":
        dim = b["dim"] % len(x.shape)
        index = b["index"]
        if isinstance(index, int) and index < 0:
            index = Sym(f"({x.shape[dim]}) + ({index})", x.hint[dim] + index)
        return new(name, "select", ir.VIEW, [x], {"dim": dim, "index": index}, val, target)
    if op == "flip":
        return new(name, "flip", ir.VIEW, [x], {"dims": [d % len(x.shape) for d in b["dims"]]}, val, target)
    if op == "cat":
        parts = [t for t in b["tensors"] if not (len(t.shape) == 1 and t.shape[0] == "0")]
        dim = b["dim"] % len(val.shape)
        return new(name, "cat", ir.VIEW, parts, {"dim": dim}, val, target)
    if op == "constant_pad_nd":
        return new(name, "pad", ir.VIEW, [x], {"pad": list(b["pad"]), "value": b.get("value", 0) or 0}, val, target)
    if op == "gather":
        return new(name, "gather", ir.VIEW, [x, b["index"]], {"dim": b["dim"] % max(1, len(x.shape))}, val, target)
    if op == "index_select":
        return new(name, "index_select", ir.VIEW, [x, b["index"]], {"dim": b["dim"] % len(x.shape)}, val, target)
    raise Unsupported(f"unsupported: {ns}.{op}")
