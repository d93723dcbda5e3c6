"""Groups of the extern lowering: a kernel being built around one extern op (matmul, attention,
convolution) or none (an elementwise chain), with its inputs, outputs and fused epilogue; and
the fx-node helpers and shape rewrites (einsum as matmul, generic view sizes) they use."""
from __future__ import annotations

import abc

import torch

from codegen import tunables as tn
from codegen.extern import matmul
from codegen.extern.epilogue import Epilogue, Operand, var
from codegen.extern.ops import TRIANGLE_OPS, is_pointwise, packet
from codegen.ir import Unsupported


def _val(node):
    return node.meta.get("val") if hasattr(node, "meta") else None


def _is_tensor(arg):
    return hasattr(arg, "op") and isinstance(_val(arg), torch.Tensor)


def _shape(node):
    return tuple(int(s) for s in _val(node).shape)


def _dtype(node):
    return str(_val(node).dtype).replace("torch.", "")


def _tensor_inputs(node):
    out = []
    for a in list(node.args) + list(node.kwargs.values()):
        for x in (a if isinstance(a, (list, tuple)) else [a]):
            if _is_tensor(x) and x not in out:
                out.append(x)
    return out


def _arg(node, index, name, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _meta(shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


def _used(t: torch.Tensor) -> list[bool]:
    return [st != 0 and sz > 1 for st, sz in zip(t.stride(), t.shape)]


# ---------------------------------------------------------------------------------------------
# Groups


class Group(abc.ABC):
    """A kernel being built around one extern op (or none): its inputs, outputs and epilogue."""

    kind = "?"

    def __init__(self, lowering, anchor, name):
        self.low = lowering
        self.anchor = anchor
        self.name = name
        self.sealed = False
        self.outputs = []
        self.inputs = []  # external tensor nodes the launcher takes, in order
        self.epilogue = Epilogue(anchor=anchor, anchor_var="acc")

    # what the templates read
    @property
    def arg_names(self):
        return [self.low.arg_name(n) for n in self.inputs]

    def out_dtype(self, node):
        return _dtype(node)

    @property
    def shape(self):
        return _shape(self.anchor)

    @property
    def doc(self):
        chain = [str(packet(m).__name__) for m in self.epilogue.members]
        head = {"matmul": "Matmul", "attention": "Flash attention",
                "elementwise": "Fused elementwise", "conv": "Fused elementwise"}[self.kind]
        what = f" ({packet(self.anchor).__name__})" if self.anchor is not None else ""
        return f"{head}{what}" + (f" with fused epilogue: {', '.join(chain)}." if chain else ".")

    def values(self):
        return self.epilogue.values()

    def node_set(self):
        return set(self.values())

    def add_input(self, node):
        if node not in self.inputs:
            self.inputs.append(node)

    def add_operand(self, node, used=None, flat=False):
        if node in self.epilogue.operands:
            return
        if used is None:
            used = self.operand_used(node)
        self.add_input(node)
        self.epilogue.operands[node] = Operand(node, self.low.arg_name(node), used, flat)

    def accepts(self, node) -> bool:
        return is_pointwise(node)

    @abc.abstractmethod
    def operand_used(self, node) -> list[bool]:
        """Per output dim of the kernel's tile, whether `node` (an epilogue operand) varies along it."""


class MatmulGroup(Group):
    kind = "matmul"

    def __init__(self, lowering, anchor, name, a, b, a_expr, b_expr, bias=None, alpha=1, beta=1,
                 triangles=()):
        super().__init__(lowering, anchor, name)
        self.a, self.b = a, b
        self.add_input(a)
        self.add_input(b)
        self._a_expr, self._b_expr = a_expr, b_expr
        self.operand_triangles = list(triangles)
        self.output_triangle = None
        self.input_dtype = _dtype(a)
        # Shapes the kernel sees, from the helper run on meta tensors.
        ns = {"torch": torch}
        exec(matmul.HELPERS, ns)
        self._helpers = ns
        a_meta = _meta(_shape(a))
        b_meta = _meta(_shape(b))
        if "permute" in a_expr:
            a_meta = a_meta.permute(*eval(a_expr.split(".permute")[1]))
        if b_expr.endswith(".t()"):
            b_meta = b_meta.t()
        elif "permute" in b_expr:
            b_meta = b_meta.permute(*eval(b_expr.split(".permute")[1]))
        a3, b3, self.out_shape, self.kernel_shape = ns["matmul_operands"](a_meta, b_meta)
        self.folded = a_meta.dim() > 2 and b_meta.dim() == 2
        self.M, self.K, self.N = a3.shape[1], a3.shape[2], b3.shape[2]
        if bias is not None:
            self.add_operand(bias, self.operand_used(bias))
            bias_var = var(self.low.arg_name(bias))
            scaled = "acc" if alpha == 1 else f"{float(alpha)!r} * acc"
            term = bias_var if beta == 1 else f"{float(beta)!r} * {bias_var}"
            self.epilogue.pre_lines.append(f"acc = {scaled} + {term}  # bias")
        elif alpha != 1:
            self.epilogue.pre_lines.append(f"acc = {float(alpha)!r} * acc")

    @property
    def a_expr(self):
        return self._a_expr.format(*[self.low.arg_name(n) for n in (self.a, self.b)])

    @property
    def b_expr(self):
        return self._b_expr.format(*[self.low.arg_name(n) for n in (self.a, self.b)])

    def operand_used(self, node):
        t = self._helpers["epilogue_operand"](_meta(_shape(node)), self.out_shape,
                                              self.kernel_shape)
        return _used(t)

    def accepts(self, node):
        if packet(node) in TRIANGLE_OPS:
            # Rows and columns of the kernel must be those of the result (no folded batch).
            return not self.folded and len(self.out_shape) >= 2
        return super().accepts(node)

    def finish(self):
        for m in self.epilogue.members:
            if (packet(m) in TRIANGLE_OPS and m.args[0] is self.anchor
                    and len(self.anchor.users) == 1 and self.anchor not in self.outputs):
                diagonal = m.args[1] if len(m.args) > 1 else m.kwargs.get("diagonal", 0)
                self.output_triangle = (TRIANGLE_OPS[packet(m)], diagonal)
        full = any(op.used[1] and op.used[2] for op in self.epilogue.operands.values())
        cfg = tn.matmul_defaults(_val(self.a).dtype, self.M, self.N, self.K, self.low.target,
                                 full_epilogue_operand=full)
        if self.input_dtype != "float32":
            cfg.pop("INPUT_PRECISION")
        cfg = tn.apply_overrides("mm", cfg, self.low.tunables)
        # The kernel's structure, not a launch parameter: triangular variants stay tiled.
        self.persistent = bool(cfg.pop("PERSISTENT")) and not (self.operand_triangles or self.output_triangle)
        return cfg


class AttentionGroup(Group):
    kind = "attention"

    def __init__(self, lowering, anchor, name, q, k, v, causal, scale):
        super().__init__(lowering, anchor, name)
        self.q, self.k, self.v = q, k, v
        for n in (q, k, v):
            self.add_input(n)
        self.causal, self.scale = bool(causal), scale
        self.input_dtype = _dtype(q)

    @property
    def q_expr(self):
        return self.low.arg_name(self.q)

    @property
    def k_expr(self):
        return self.low.arg_name(self.k)

    @property
    def v_expr(self):
        return self.low.arg_name(self.v)

    def operand_used(self, node):
        shape = self.shape
        shape4 = shape if len(shape) == 4 else (shape[0], 1) + tuple(shape[1:])
        return _used(_meta(_shape(node)).expand(shape).reshape(shape4))

    def finish(self):
        cfg = tn.attention_defaults(_val(self.q).dtype, _shape(self.q)[-1], self.low.target)
        if self.input_dtype != "float32":
            cfg.pop("INPUT_PRECISION")
        return tn.apply_overrides("attn", cfg, self.low.tunables)


class ElementwiseGroup(Group):
    """A pointwise chain; `conv` set when it is the epilogue of a torch convolution."""

    kind = "elementwise"

    def __init__(self, lowering, anchor, name, shape, conv=None):
        super().__init__(lowering, anchor, name)
        self._shape = tuple(shape)
        self.epilogue = Epilogue(anchor=None, anchor_var=None)
        self.conv = conv  # (node, call format with {input}/{weight}) for a conv epilogue
        self.launcher_prologue = []
        if conv is not None:
            self.epilogue.anchor = anchor
            self.epilogue.anchor_var = var(anchor.name)

    @property
    def shape(self):
        return self._shape

    def operand_used(self, node):
        return _used(_meta(_shape(node)).expand(self.shape))

    def add_operand(self, node, used=None, flat=None):
        if used is None:
            used = self.operand_used(node)
        if flat is None:
            flat = _shape(node) == self.shape
        super().add_operand(node, used, flat)

    def accepts(self, node):
        if packet(node) in TRIANGLE_OPS:
            return len(self.shape) >= 2
        return super().accepts(node)

    def finish(self):
        if self.kind == "conv":  # the layout choice is made; the rest configures the kernel
            cfg = tn.apply_overrides("conv", tn.conv_defaults(self.low.target), self.low.tunables)
            cfg.pop("channels_last")
            return cfg
        return tn.apply_overrides("ew", tn.elementwise_defaults(self.low.target), self.low.tunables)


def _einsum_as_matmul(equation: str, rank_a: int, rank_b: int):
    """(a, b) view expressions that turn a two-operand einsum into torch.matmul's form.

    Supported: out = batch + m + n in that order, one contracted index, one n index, and either
    one m index or no batch (then the m indices fold into M): "bijl,lk->bijk", "bik,bkj->bij",
    "ik,jk->ij", "bhqd,bhkd->bhqk". Operands are permuted views, never copies.
    """
    eq = equation.replace(" ", "")
    if "..." in eq or "->" not in eq or eq.count(",") != 1:
        raise Unsupported(f"unsupported: einsum {equation!r}")
    lhs, out = eq.split("->")
    ia, ib = lhs.split(",")
    batch = [c for c in out if c in ia and c in ib]
    m = [c for c in out if c in ia and c not in ib]
    n = [c for c in out if c in ib and c not in ia]
    k = [c for c in ia if c in ib and c not in out]
    ok = (sorted(ia) == sorted(batch + m + k) and sorted(ib) == sorted(batch + k + n)
          and out == "".join(batch + m + n) and len(k) == 1 and len(n) == 1
          and (len(m) == 1 or not batch) and len(m) >= 1
          and len(ia) == rank_a and len(ib) == rank_b)
    if not ok:
        raise Unsupported(f"unsupported: einsum {equation!r}")

    def view(arg, spec, order):
        perm = [spec.index(c) for c in order]
        return arg if perm == sorted(perm) else f"{arg}.permute{tuple(perm)}"

    return view("{0}", ia, batch + m + k), view("{1}", ib, batch + k + n)


def _generic_sizes(x: str, in_shape, sizes, keep=None) -> str:
    """View sizes that follow the input's: the trace baked them in, the harness shrinks them.

    A size equal to the input's size at the same position becomes `x.shape[i]` (or -1 for
    expand, which means "keep"), and when exactly one size is left over it becomes -1 (inferred).
    Anything else stays as traced.
    """
    out = []
    for i, s in enumerate(sizes):
        if i < len(in_shape) and s == in_shape[i] and len(sizes) == len(in_shape):
            out.append(str(keep) if keep is not None else f"{x}.shape[{i}]")
        elif i < len(in_shape) and s == in_shape[i] and i < len(sizes) - 1 and keep is None:
            out.append(f"{x}.shape[{i}]")  # leading dims kept by a flatten / unflatten
        else:
            out.append(None)
    left = [i for i, o in enumerate(out) if o is None]
    if keep is None and len(left) == 1 and -1 not in sizes:
        out[left[0]] = "-1"
    return "[" + ", ".join(o if o is not None else repr(s) for o, s in zip(out, sizes)) + "]"
