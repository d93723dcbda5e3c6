"""Lowering a task whose forward contains extern ops: plan groups over the fx graph, emit the file.

Walk the traced graph (codegen.capture.trace_templates) in order. Each extern op opens a group; a
pointwise node joins the open group that produced one of its inputs when it keeps that group's
output shape (its other inputs become broadcast epilogue operands). A group is sealed, and its launch emitted into forward, as
soon as one of its values is needed outside it. Views stay torch views in forward.
"""
from __future__ import annotations

import torch
from torch.fx.node import map_arg

from codegen.extern import attention, conv_nhwc, elementwise, matmul
from codegen.extern.groups import (AttentionGroup, ElementwiseGroup, MatmulGroup, _arg, _einsum_as_matmul,
                                   _generic_sizes, _is_tensor, _shape, _tensor_inputs, _val)
from codegen.extern.epilogue import var
from codegen.extern.ops import (ATTENTION_OPS, CONV_OPS, MATMUL_OPS, TRIANGLE_OPS, is_pointwise,
                                VIEW_ATTRIBUTES, VIEW_METHODS, aten, packet)
from codegen.ir import Unsupported
from codegen.render import state_access

FORWARD_RESERVED = {"self", "torch", "triton", "tl", "F", "nn", "math"}
ELEMENTWISE_ALIASES = {aten.min.other: aten.minimum.default, aten.max.other: aten.maximum.default}


# ---------------------------------------------------------------------------------------------
# The lowering


class _Lowering:
    def __init__(self, traced, tunables, target, forward_args):
        self.forward_args = forward_args
        self.traced = traced
        self.gm = traced.fx
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
        self.state_of = {}     # placeholder -> the state_dict key it carries

    # names --------------------------------------------------------------------------------
    def arg_name(self, node):
        if node not in self.names:
            base = self.state_of[node].replace(".", "_") if node in self.state_of else node.name
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
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        n_state = len(self.traced.state_names)
        for node, key in zip(placeholders, self.traced.state_names):
            self.state_of[node] = key
            self.env[node] = state_access(key)
        user_inputs = placeholders[n_state:]
        self.user_inputs = user_inputs
        if len(self.forward_args) < len(user_inputs):
            raise Unsupported("unsupported: forward with *args")
        for node, name in zip(user_inputs, self.forward_args):
            self.env[node] = name
            self.names[node] = name
            self.used_names.add(name)
        self._pre_pass()
        self._fold_constants()
        for node in self.gm.graph.nodes:  # torch.min(a, b) is torch.minimum(a, b) under another name
            node.target = ELEMENTWISE_ALIASES.get(node.target, node.target)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder" or node in self.absorbed:
                continue
            if node.op == "output":
                for g in self.groups:
                    self.seal(g)
                self.outputs = node.args[0] if isinstance(node.args[0], (list, tuple)) else [node.args[0]]
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

    def _fold_constants(self):
        """A tensor made in forward() from a number (`torch.min(x, torch.tensor(0.5))`), and ops
        on such tensors alone, become the number in the ops that read them: a literal of the
        kernel. A 0-d tensor beside a tensor with dims promotes as a number does, so the result's
        dtype is unchanged. Larger constants stay and are refused by name in the walk."""
        numbers = {}
        for node in self.gm.graph.nodes:
            if node.op == "get_attr":
                value = getattr(self.gm, node.target, None)
                if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_meta:
                    numbers[node] = value
            elif (node.op == "call_function" and node.all_input_nodes
                  and all(a in numbers for a in node.all_input_nodes)):
                try:  # folded for real, as the reference computes it
                    value = node.target(*map_arg(node.args, numbers.get), **map_arg(node.kwargs, numbers.get))
                except Exception:
                    continue
                if isinstance(value, torch.Tensor) and value.dim() == 0:
                    numbers[node] = value
        for node, value in reversed(numbers.items()):  # readers first: a chain of them folds whole
            readers = [u for u in node.users if u.op == "call_function" and u not in numbers
                       and any(a not in numbers for a in u.all_input_nodes)]
            for user in readers:
                user.args = map_arg(user.args, lambda a: value.item() if a is node else a)
                user.kwargs = map_arg(user.kwargs, lambda a: value.item() if a is node else a)
            if all(u in self.absorbed for u in node.users):
                self.absorbed.add(node)

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
        else:  # conv2d(x, w, b, stride, padding, dilation, groups) and
            # conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation): torch.nn.functional's order
            if p is aten.conv_transpose2d and not _plain_transpose(node):
                raise Unsupported("unsupported: a grouped or dilated conv_transpose2d here "
                                  "(cuDNN runs it faster on NCHW tensors: codegen.hybrid lowers it)")
            fn = f"F.{p.__name__}"
            params = ((("stride", 1), ("padding", 0), ("output_padding", 0), ("groups", 1), ("dilation", 1))
                      if p is aten.conv_transpose2d else
                      (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)))
            extra = [repr(_arg(node, 3 + i, n, d)) for i, (n, d) in enumerate(params)]
        # groups are the fourth argument in every order above; a depthwise one's follow the input
        if extra[3] != "1" and extra[3] == repr(_shape(x)[1]):
            extra[3] = conv_nhwc.INPUT_CHANNELS
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
        out_shape = _shape(node)
        # the latest open group of the result's shape takes the op; a smaller operand's group (a
        # per-channel scale) is materialised for it rather than closing the big one
        fitting = [g for g in owners if g.shape == out_shape] or owners
        target = max(fitting, key=self.groups.index) if fitting else None
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
                              f"{conv_nhwc.conv_arguments(extra, self.env[x])})  # cuDNN")
            self.env[g.anchor] = name
            return
        if isinstance(g, ElementwiseGroup) and g.conv is not None:
            if conv_nhwc.fuse_epilogue(g, self.arg_name, self.tunables, self.target):
                self.helpers.add("conv")
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


def _plain_transpose(node) -> bool:
    """A conv_transpose2d without groups or dilation: cuDNN runs these channels-last in about half
    the time (0.70 vs 1.32 ms, (128, 64, 64, 64) -> (128, 128, 130, 130) on an H200). A grouped,
    dilated one ran slower that way (the whole task 65.9 vs 50.4 ms, bench/tasks_large)."""
    groups, dilation = _arg(node, 6, "groups", 1), _arg(node, 7, "dilation", 1)
    return groups == 1 and all(d == 1 for d in (dilation if isinstance(dilation, (list, tuple)) else [dilation]))
