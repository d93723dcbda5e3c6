"""Lowering a task whose forward contains extern ops: plan groups over the fx graph, emit the file.

Walk the exported graph in order. Each extern op opens a group; a pointwise node joins the open
group that produced one of its inputs when it keeps that group's output shape (its other inputs
become broadcast epilogue operands). A group is sealed, and its launch emitted into forward, as
soon as one of its values is needed outside it. Views stay torch views in forward.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch

from codegen import tunables as tn
from codegen.extern import attention, conv_nhwc, elementwise, matmul
from codegen.ir import Unsupported
from codegen.render import assemble as render_assemble, forward_signature, reference_parts, state_access
from codegen.extern.epilogue import Epilogue, Operand, var
from codegen.extern.ops import (ATTENTION_OPS, CONV_OPS, MATMUL_OPS, TRIANGLE_OPS, is_pointwise,
                                VIEW_ATTRIBUTES, VIEW_METHODS, aten, packet)

FORWARD_RESERVED = {"self", "torch", "triton", "tl", "F", "nn", "math"}


@dataclass
class ExternLowering:
    ok: bool
    code: str | None = None
    reason: str | None = None
    kernels: list = field(default_factory=list)
    space: dict = field(default_factory=dict)
    tunables: dict = field(default_factory=dict)


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


# ---------------------------------------------------------------------------------------------
# The lowering


class _Lowering:
    def __init__(self, program, tunables, target, forward_args):
        self.forward_args = forward_args
        self.program = program
        self.gm = program.graph_module
        self.tunables = tunables or {}
        self.target = target
        self.env = {}          # node -> expression in forward
        self.names = {}        # node -> launcher argument name
        self.used_names = set()
        self.owner = {}        # node -> group holding its value
        self.groups = []
        self.stmts = []
        self.kernels = []      # (kernel source, launcher source, config name, config)
        self.absorbed = set()  # nodes folded into a template (tril operands, diag matrices)
        self.helpers = set()
        self.configs = {}

    # names --------------------------------------------------------------------------------
    def arg_name(self, node):
        if node not in self.names:
            base = node.name
            if node.op == "placeholder" and node.name.startswith(("p_", "b_")) and \
                    node.name in self.param_names:
                base = node.name[2:]
            base = base if base not in FORWARD_RESERVED else base + "_"
            name, i = base, 1
            while name in self.used_names:
                name, i = f"{base}_{i}", i + 1
            self.used_names.add(name)
            self.names[node] = name
        return self.names[node]

    def fwd(self, node):
        return self.env[node]

    # main walk --------------------------------------------------------------------------------
    def run(self):
        sig = self.program.graph_signature
        self.param_names = set()
        user_inputs = []
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for spec, node in zip(sig.input_specs, placeholders):
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER"):
                self.param_names.add(node.name)
                self.env[node] = state_access(spec.target)
            elif kind == "USER_INPUT":
                user_inputs.append(node)
            else:
                raise Unsupported(f"unsupported: {kind.lower()} input {spec.target}")
        self.user_inputs = user_inputs
        if len(self.forward_args) < len(user_inputs):
            raise Unsupported("unsupported: forward with *args")
        for node, name in zip(user_inputs, self.forward_args):
            self.env[node] = name
            self.names[node] = name
            self.used_names.add(name)
        self._pre_pass()
        for node in self.gm.graph.nodes:
            if node.op == "placeholder" or node in self.absorbed:
                continue
            if node.op == "output":
                for g in self.groups:
                    self.seal(g)
                self.outputs = node.args[0]
                continue
            if node.op != "call_function":
                raise Unsupported(f"unsupported: {node.op} {node.target}")
            p = packet(node)
            if p in VIEW_METHODS or p in VIEW_ATTRIBUTES or p in (aten.select, aten.slice):
                self.view(node)
            elif p in MATMUL_OPS:
                self.matmul(node)
            elif p in ATTENTION_OPS:
                self.attention(node)
            elif p in CONV_OPS:
                self.convolution(node)
            elif is_pointwise(node) or p in TRIANGLE_OPS:
                self.pointwise(node)
            else:
                raise Unsupported(f"unsupported: {node.target}")

    def _pre_pass(self):
        """Find tril/triu operands and diag matrices that a matmul absorbs."""
        self.diag_matmuls = {}
        for node in self.gm.graph.nodes:
            if packet(node) not in MATMUL_OPS or packet(node) is aten.linear:
                continue
            if packet(node) is aten.einsum:
                continue
            with_bias = packet(node) in (aten.addmm, aten.baddbmm)
            operands = node.args[1:3] if with_bias else node.args[:2]
            for x in operands:
                if self._operand_node(x)[1] is not None:
                    self.absorbed.add(x)
            if with_bias:
                continue
            a, b = node.args[0], node.args[1]
            for side, x in (("a", a), ("b", b)):
                if (packet(x) is aten.diag and len(x.users) == 1 and len(_shape(x.args[0])) == 1
                        and len(_shape(a)) == 2 and len(_shape(b)) == 2):
                    self.diag_matmuls[node] = (side, x.args[0], b if side == "a" else a)
                    self.absorbed.add(x)
                    break

    def materialize(self, node):
        """Make `node`'s value available in forward (sealing the group that holds it)."""
        g = self.owner.get(node)
        if g is not None and not g.sealed:
            self.seal(g)
        if node not in self.env:
            raise Unsupported(f"unsupported: value {node.name} is not materialised")
        return self.env[node]

    def view(self, node):
        args = []
        for a in node.args:
            if hasattr(a, "op"):
                args.append(self.materialize(a))
            else:
                args.append(repr(a))
        p = packet(node)
        if p in (aten.view, aten.reshape, aten.expand) and len(node.args) > 1:
            args[1] = _generic_sizes(args[0], _shape(node.args[0]), list(node.args[1]),
                                     keep=-1 if p is aten.expand else None)
        if p in VIEW_ATTRIBUTES:
            attr = VIEW_ATTRIBUTES[p]
            expr = f"{args[0]}.{attr}" if attr else args[0]
        elif p in VIEW_METHODS:
            method = VIEW_METHODS[p]
            rest = ", ".join(args[1:] + [f"{k}={v!r}" for k, v in node.kwargs.items()
                                         if k != "memory_format"])
            expr = f"{args[0]}.{method}({rest})"
        else:
            expr = f"torch.ops.aten.{p.__name__}({', '.join(args)})"
        name = self.fwd_name(node)
        self.stmts.append(f"{name} = {expr}")
        self.env[node] = name

    def fwd_name(self, node):
        return node.name + "_" if node.name in FORWARD_RESERVED else node.name

    def unique_kernel(self, base):
        taken = {getattr(g, "kernel_name", None) for g in self.groups}
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    def new_name(self, base, exclude=None):
        """A launcher name that says what it runs, distinct from every forward variable."""
        taken = ({g.name for g in self.groups if g is not exclude}
                 | {n.name for n in self.gm.graph.nodes} | set(self.forward_args))
        if base in taken:
            base = "launch_" + base
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    def _operand_node(self, x):
        """(node, triangle) for a matmul operand: a tril/triu with no other user is absorbed."""
        if packet(x) in TRIANGLE_OPS and len(x.users) == 1 and _is_tensor(x.args[0]):
            diagonal = x.args[1] if len(x.args) > 1 else x.kwargs.get("diagonal", 0)
            return x.args[0], (TRIANGLE_OPS[packet(x)], diagonal)
        return x, None

    def matmul(self, node):
        p = packet(node)
        if node in self.diag_matmuls:
            return self.diag_matmul(node)
        bias, alpha, beta = None, 1, 1
        if p is aten.linear:
            a, w = node.args[0], node.args[1]
            bias = _arg(node, 2, "bias")
            ta, tb = None, None
            b, b_expr = w, "{1}.t()"
        elif p in (aten.addmm, aten.baddbmm):
            bias, a, b = node.args[0], node.args[1], node.args[2]
            beta, alpha = _arg(node, 3, "beta", 1), _arg(node, 4, "alpha", 1)
            a, ta = self._operand_node(a)
            b, tb = self._operand_node(b)
            b_expr = "{1}"
        elif p is aten.einsum:
            a, b = node.args[1]
            a_expr, b_expr = _einsum_as_matmul(node.args[0], len(_shape(a)), len(_shape(b)))
            g = MatmulGroup(self, node, "einsum", a, b, a_expr, b_expr)
            for x in (a, b):
                self.materialize(x)
            return self.open(g)
        else:
            a, ta = self._operand_node(node.args[0])
            b, tb = self._operand_node(node.args[1])
            b_expr = "{1}"
        triangles = []
        if ta is not None:
            if len(_shape(a)) > 2 and len(_shape(b)) == 2 or len(_shape(a)) < 2:
                raise Unsupported("unsupported: triangular batched operand of a folded matmul")
            triangles.append(("a",) + ta)
        if tb is not None:
            if len(_shape(b)) < 2:
                raise Unsupported("unsupported: triangular vector operand")
            triangles.append(("b",) + tb)
        inputs = [a, b] + ([bias] if bias is not None else [])
        for x in inputs:
            self.materialize(x)
        if not all(_val(x).dtype.is_floating_point for x in (a, b)):
            raise Unsupported(f"unsupported: integer {node.target}")
        short = "linear" if p is aten.linear else "matmul"
        g = MatmulGroup(self, node, short, a, b, "{0}", b_expr, bias, alpha, beta,
                        triangles)
        self.open(g)

    def diag_matmul(self, node):
        """diag(v) @ B scales B's rows by v; B @ diag(v) its columns: a pointwise product."""
        side, vec, mat = self.diag_matmuls[node]
        for x in (vec, mat):
            self.materialize(x)
        g = ElementwiseGroup(self, None, "diag_matmul", _shape(node))
        g.epilogue.members.append(node)
        name = self.arg_name(vec)
        if side == "a":
            g.launcher_prologue.append(f"{name} = {name}.unsqueeze(-1)  # row scale: v[:, None]")
            used = [True, False]
        else:
            used = [False, True]
        g.add_operand(mat)
        g.add_operand(vec, used=used, flat=False)
        g.epilogue.custom[node] = f"{var(name)} * {var(self.arg_name(mat))}"
        self.open(g)

    def attention(self, node):
        q, k, v = node.args[:3]
        mask = _arg(node, 3, "attn_mask")
        dropout = _arg(node, 4, "dropout_p", 0.0)
        causal = _arg(node, 5, "is_causal", False)
        scale = node.kwargs.get("scale", node.args[6] if len(node.args) > 6 else None)
        gqa = node.kwargs.get("enable_gqa", node.args[7] if len(node.args) > 7 else False)
        if mask is not None:
            raise Unsupported("unsupported: scaled_dot_product_attention with attn_mask")
        if dropout:
            raise Unsupported("unsupported: scaled_dot_product_attention with dropout")
        if gqa or _shape(q)[:-2] != _shape(k)[:-2] or _shape(q)[-1] != _shape(v)[-1] \
                or len(_shape(q)) not in (3, 4):
            raise Unsupported("unsupported: scaled_dot_product_attention with these shapes")
        for x in (q, k, v):
            self.materialize(x)
        self.open(AttentionGroup(self, node, "attention", q, k, v, causal, scale))

    def convolution(self, node):
        p = packet(node)
        x, w = node.args[0], node.args[1]
        bias = _arg(node, 2, "bias")
        if p is aten.convolution:
            stride, padding, dilation, transposed, output_padding, groups = node.args[3:9]
            nd = len(_shape(w)) - 2
            fn = f"F.conv_transpose{nd}d" if transposed else f"F.conv{nd}d"
            extra = ([repr(stride), repr(padding), repr(output_padding), repr(groups),
                      repr(dilation)] if transposed else
                     [repr(stride), repr(padding), repr(dilation), repr(groups)])
        else:
            fn = f"F.{p.__name__}"
            defaults = [1, 0, 1, 1]
            extra = [repr(_arg(node, 3 + i, n, d)) for i, (n, d) in
                     enumerate(zip(("stride", "padding", "dilation", "groups"), defaults))]
        for t in (x, w) + ((bias,) if bias is not None else ()):
            self.materialize(t)
        g = ElementwiseGroup(self, node, p.__name__.replace("convolution", "conv"),
                             _shape(node), conv=(fn, extra, x, w, bias))
        g.add_input(x)
        g.add_input(w)
        self.open(g)

    def open(self, g):
        self.groups.append(g)
        for v in g.values():
            self.owner[v] = g

    def pointwise(self, node):
        inputs = _tensor_inputs(node)
        owners = [self.owner[x] for x in inputs if x in self.owner and not self.owner[x].sealed]
        target = max(owners, key=self.groups.index) if owners else None
        out_shape = _shape(node)
        if target is not None and target.shape == out_shape and target.accepts(node) and \
                _val(node).dtype.is_floating_point:
            externals = [x for x in inputs if x not in target.node_set()]
            try:
                fits = all(torch.broadcast_shapes(_shape(x), out_shape) == out_shape
                           for x in externals)
            except RuntimeError:
                fits = False
            if fits:
                for x in externals:
                    self.materialize(x)
                if target.sealed:  # materialising an input sealed it: start afresh
                    return self.pointwise(node)
                for x in externals:
                    target.add_operand(x)
                target.epilogue.members.append(node)
                self.owner[node] = target
                return
        if packet(node) in TRIANGLE_OPS and len(out_shape) < 2:
            raise Unsupported(f"unsupported: {node.target} of a vector")
        if not inputs:
            raise Unsupported(f"unsupported: {node.target} without tensor inputs")
        for x in inputs:
            self.materialize(x)
        g = ElementwiseGroup(self, None, "fused_" + packet(node).__name__,
                             out_shape)
        for x in inputs:
            g.add_operand(x)
        g.epilogue.members.append(node)
        self.open(g)

    # emission -------------------------------------------------------------------------------
    def seal(self, g):
        if g.sealed:
            return
        g.sealed = True
        members = g.node_set()
        g.outputs = [v for v in g.values() if any(u not in members for u in v.users)]
        if isinstance(g, ElementwiseGroup) and g.conv is not None and not g.epilogue.members:
            fn, extra, x, w, bias = g.conv
            b = self.env[bias] if bias is not None else "None"
            name = self.fwd_name(g.anchor)
            self.stmts.append(f"{name} = {fn}({self.env[x]}, {self.env[w]}, {b}, "
                              f"{', '.join(extra)})  # cuDNN")
            self.env[g.anchor] = name
            return
        if isinstance(g, ElementwiseGroup) and g.conv is not None:
            self._conv_epilogue(g)
        # Name the launcher after what it computes: linear_add_gelu_mul_add.
        ops = [packet(m).__name__ for m in g.epilogue.members if m not in g.epilogue.custom]
        base = g.name.removeprefix("fused_")
        if ops and ops[0] == base:
            ops = ops[1:]
        g.kernel_name = self.unique_kernel("_".join([base] + ops[:5]).strip("_"))
        g.name = self.new_name(g.kernel_name, exclude=g)
        cfg = g.finish()
        module = {"matmul": matmul, "attention": attention, "elementwise": elementwise,
                  "conv": conv_nhwc}[g.kind]
        if g.kind in ("matmul", "attention"):
            self.helpers.add(g.kind)
        kernel, launcher = module.emit(g)
        cfg_name = f"{g.kernel_name.upper()}_CONFIG"
        self.configs[cfg_name] = (g.kind, cfg)
        self.kernels.append((f"{g.kernel_name}_kernel", kernel, launcher))
        outs = [self.fwd_name(o) for o in g.outputs]
        call = f"{g.name}({', '.join(self.env[n] for n in g.inputs)})"
        self.stmts.append(f"{', '.join(outs)} = {call}")
        for o, name in zip(g.outputs, outs):
            self.env[o] = name

    def _conv_epilogue(self, g):
        """The convolution runs in torch without its bias; the bias joins the fused epilogue."""
        fn, extra, x, w, bias = g.conv
        conv_name = var(g.anchor.name)
        xn, wn = self.arg_name(x), self.arg_name(w)
        g.launcher_prologue.append(
            f"{conv_name} = {fn}({xn}, {wn}, None, {', '.join(extra)})  # cuDNN, bias fused below")
        # The conv output is the first operand, read flat; the bias varies along channels only.
        ep = g.epilogue
        rank = len(g.shape)
        members_ops = dict(ep.operands)
        ep.operands = {"conv": Operand(None, conv_name, [True] * rank, flat=True)}
        ep.operands.update(members_ops)
        if bias is not None:
            bname = self.arg_name(bias)
            g.add_input(bias)
            g.launcher_prologue.append(
                f"{bname} = {bname}.view(-1, *([1] * ({conv_name}.dim() - 2)))  # per channel")
            used = [False] * rank
            used[1] = True
            ep.operands["conv_bias"] = Operand(None, bname, used, flat=False)
            ep.pre_lines.append(f"{conv_name} = {var(conv_name)} + {var(bname)}  # conv bias")
        ep.anchor_var = var(conv_name)
        layout = tn.conv_defaults(self.target)
        layout = tn.apply_overrides("conv", layout, self.tunables)
        if fn == "F.conv2d" and layout["channels_last"] and conv_nhwc.eligible(g):
            # cuDNN's channels-last kernels are much faster; the epilogue writes NCHW back.
            g.kind = "conv"
            self.helpers.add("conv")
            g.launcher_prologue[0] = (
                f"{conv_name} = {fn}(to_channels_last({xn}, {conv_nhwc.CONFIG_TOKEN}), {wn}, None, "
                f"{', '.join(extra)}).contiguous(memory_format=torch.channels_last)  # cuDNN, NHWC")


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


def _config_src(name, cfg):
    items = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
    return f"{name} = dict({items})"


def assemble(task_source, low: _Lowering) -> str:
    fwd_args, _ = forward_signature(task_source)
    out_spec = low.program.call_spec.out_spec
    rets = [low.env[o] if hasattr(o, "op") else repr(o) for o in low.outputs]
    single = out_spec is not None and out_spec.is_leaf()
    ret = rets[0] if single and len(rets) == 1 else "(" + ", ".join(rets) + ("," if len(rets) == 1 else "") + ")"
    forward = [f"    def forward({fwd_args}):"] + ["        " + s for s in low.stmts] + [f"        return {ret}"]
    preamble, model_src = reference_parts(task_source, "\n".join(forward))
    settings = ["# Tunables: block sizes, warps and pipeline depth per kernel."]
    settings += [_config_src(n, c) for n, (_, c) in low.configs.items()]
    sections = ["\n".join(settings)]
    code = "\n".join(k + l for _, k, l in low.kernels)
    if "INTERPRETED" in code:
        sections.append("# Under TRITON_INTERPRET=1 the kernels run on the CPU (correctness only).\n"
                        'INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"')
    if "matmul" in low.helpers:
        sections += matmul.HELPERS.split("\n\n\n")
    if "attention" in low.helpers:
        sections.append(attention.HELPERS)
    if "conv" in low.helpers:
        sections += conv_nhwc.HELPERS.split("\n\n\n")
    for _, kernel, launcher in low.kernels:
        sections += [kernel, launcher]
    doc = ("Triton lowering of the reference Model, generated by akg-op's embedded generator.\n\n"
           "Matmuls and attention run in Triton templates with their pointwise epilogues fused;\n"
           "convolutions stay in torch (cuDNN) with their epilogue fused into one Triton kernel.")
    return render_assemble(doc, sections, model_src, preamble)


def export_task(task_source: str):
    ns: dict = {"__name__": "akg_task"}
    exec(compile(task_source, "<task>", "exec"), ns)
    model = ns["Model"](*ns["get_init_inputs"]())
    inputs = ns["get_inputs"]()
    model.eval()
    return torch.export.export(model, tuple(inputs))


def lower_extern(task_source: str, program=None, *, tunables=None, target="cuda") -> ExternLowering:
    """See the package docstring for the contract."""
    problem = tn.check_keys(tunables)
    if problem:
        return ExternLowering(ok=False, reason=problem, space=tn.space_of("matmul", "attention", "conv", "elementwise"))
    try:
        if program is None:
            program = export_task(task_source)
        low = _Lowering(program, tunables, target,
                        forward_signature(task_source)[1])
        low.run()
        code = assemble(task_source, low)
    except Unsupported as e:
        return ExternLowering(ok=False, reason=str(e), space=tn.space_of("matmul", "attention", "conv", "elementwise"))
    except ValueError as e:  # an epilogue op with no Triton formula
        return ExternLowering(ok=False, reason=f"unsupported: {e}", space=tn.space_of("matmul", "attention", "conv", "elementwise"))
    except Exception as e:  # export failures and the like: say what happened
        return ExternLowering(ok=False, reason=f"error: {type(e).__name__}: {e}",
                              space=tn.space_of("matmul", "attention", "conv", "elementwise"))
    families = {kind for kind, _ in low.configs.values()}
    prefix = {"matmul": "mm.", "attention": "attn.", "elementwise": "ew.", "conv": "conv."}
    space = tn.space_of(*families)
    used = {}
    for name, (kind, cfg) in low.configs.items():
        for k, v in cfg.items():
            used.setdefault(f"{prefix[kind]}{k}", v)
    return ExternLowering(ok=True, code=code, kernels=[k for k, _, _ in low.kernels],
                          space=space, tunables=used)
