"""Op tables: which ATen ops are extern, which are free views, and how pointwise ops read in Triton.

Pointwise expressions are emitted on fp32 values (epilogues run on the fp32 accumulator), so every
formula here is written for fp32 and cast once at the store.
"""
from __future__ import annotations

import math

import torch

aten = torch.ops.aten

MATMUL_OPS = {aten.linear, aten.matmul, aten.mm, aten.bmm, aten.addmm, aten.mv, aten.einsum,
              aten.baddbmm}
ATTENTION_OPS = {aten.scaled_dot_product_attention}
CONV_OPS = {aten.conv1d, aten.conv2d, aten.conv3d, aten.convolution}
EXTERN_OPS = MATMUL_OPS | ATTENTION_OPS | CONV_OPS

# Views and layout-only ops: emitted as torch tensor methods in forward (no kernel, no copy,
# except reshape/contiguous on layouts that force one, exactly as in the reference).
VIEW_METHODS = {
    aten.t: "t",
    aten.transpose: "transpose",
    aten.permute: "permute",
    aten.view: "view",
    aten.reshape: "reshape",
    aten.unsqueeze: "unsqueeze",
    aten.squeeze: "squeeze",
    aten.expand: "expand",
    aten.flatten: "flatten",
    aten.unflatten: "unflatten",
    aten.contiguous: "contiguous",
    aten.detach: "detach",
}
# Views spelled as attributes in torch (A.T, A.mT).
VIEW_ATTRIBUTES = {aten.numpy_T: "T", aten.mT: "mT", aten.alias: None}

# Index-dependent epilogue ops: they need the row/column of each output element.
TRIANGLE_OPS = {aten.tril: "lower", aten.triu: "upper"}


def packet(node):
    """The OpOverloadPacket of an fx call_function node (aten.add for aten.add.Tensor), or None."""
    target = getattr(node, "target", None)
    return getattr(target, "overloadpacket", None)


def has_extern(graph) -> bool:
    """True when an fx Graph/GraphModule contains an op this package owns."""
    graph = getattr(graph, "graph", graph)
    return any(node.op == "call_function" and packet(node) in EXTERN_OPS for node in graph.nodes)


def _f(value) -> str:
    """A Python scalar as a Triton literal (fp32 arithmetic)."""
    value = float(value)
    if math.isinf(value):
        return "float('inf')" if value > 0 else "float('-inf')"
    return repr(value)


def _tanh(x: str) -> str:
    # tanh(x) = 2*sigmoid(2x) - 1: exact enough in fp32, and portable across Triton versions
    # (libdevice's tanh lives in a backend-specific module).
    return f"(2.0 * tl.sigmoid(2.0 * {x}) - 1.0)"


def _softplus(x: str, beta=1.0, threshold=20.0) -> str:
    bx = f"({_f(beta)} * {x})"
    return f"tl.where({bx} > {_f(threshold)}, {x}, tl.log(1.0 + tl.exp({bx})) / {_f(beta)})"


def _gelu(x: str, approximate: str = "none") -> str:
    if approximate == "tanh":
        inner = f"0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x})"
        return f"(0.5 * {x} * (1.0 + {_tanh(inner)}))"
    return f"(0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476)))"


def _binary(symbol):
    def emit(a, b, alpha=1.0, **_):
        if alpha != 1.0:
            b = f"({_f(alpha)} * {b})"
        return f"({a} {symbol} {b})"
    return emit


def _rsub(a, b, alpha=1.0, **_):
    return f"({b} - {_f(alpha)} * {a})" if alpha != 1.0 else f"({b} - {a})"


def _clamp(x, min=None, max=None):
    out = x
    if min is not None:
        out = f"tl.maximum({out}, {min})"
    if max is not None:
        out = f"tl.minimum({out}, {max})"
    return out


def _elu(x, alpha=1.0, scale=1.0, input_scale=1.0):
    neg = f"{_f(alpha)} * (tl.exp({x} * {_f(input_scale)}) - 1.0)"
    return f"({_f(scale)} * tl.where({x} > 0.0, {x}, {neg}))"


def _pow(x, exponent):
    if isinstance(exponent, str):
        return f"tl.exp({exponent} * tl.log({x}))"
    if exponent == 2:
        return f"({x} * {x})"
    if exponent == 3:
        return f"({x} * {x} * {x})"
    if exponent == 0.5:
        return f"tl.sqrt({x})"
    if float(exponent).is_integer():
        # Integer powers keep the sign of negative bases, as torch does.
        n = int(exponent)
        body = " * ".join([x] * abs(n)) if abs(n) <= 8 else None
        if body is not None:
            return f"({body})" if n > 0 else f"(1.0 / ({body}))"
    return f"tl.exp({_f(exponent)} * tl.log({x}))"


# packet -> emitter(args as expressions or Python scalars, **kwargs) -> expression
POINTWISE = {
    aten.add: _binary("+"),
    aten.sub: _binary("-"),
    aten.rsub: _rsub,
    aten.mul: _binary("*"),
    aten.div: lambda a, b, rounding_mode=None: f"({a} / {b})" if rounding_mode is None else None,
    aten.neg: lambda x: f"(-{x})",
    aten.relu: lambda x: f"tl.maximum({x}, 0.0)",
    aten.gelu: lambda x, approximate="none": _gelu(x, approximate),
    aten.sigmoid: lambda x: f"tl.sigmoid({x})",
    aten.tanh: lambda x: _tanh(x),
    aten.silu: lambda x: f"({x} * tl.sigmoid({x}))",
    aten.mish: lambda x: f"({x} * {_tanh(_softplus(x))})",
    aten.softplus: lambda x, beta=1.0, threshold=20.0: _softplus(x, beta, threshold),
    aten.exp: lambda x: f"tl.exp({x})",
    aten.log: lambda x: f"tl.log({x})",
    aten.sqrt: lambda x: f"tl.sqrt({x})",
    aten.rsqrt: lambda x: f"tl.rsqrt({x})",
    aten.abs: lambda x: f"tl.abs({x})",
    aten.erf: lambda x: f"tl.erf({x})",
    aten.reciprocal: lambda x: f"(1.0 / {x})",
    aten.square: lambda x: f"({x} * {x})",
    aten.pow: _pow,
    aten.maximum: lambda a, b: f"tl.maximum({a}, {b})",
    aten.minimum: lambda a, b: f"tl.minimum({a}, {b})",
    aten.clamp: _clamp,
    aten.clamp_min: lambda x, m: f"tl.maximum({x}, {m})",
    aten.clamp_max: lambda x, m: f"tl.minimum({x}, {m})",
    aten.hardtanh: lambda x, lo=-1.0, hi=1.0: f"tl.minimum(tl.maximum({x}, {_f(lo)}), {_f(hi)})",
    aten.relu6: lambda x: f"tl.minimum(tl.maximum({x}, 0.0), 6.0)",
    aten.leaky_relu: lambda x, slope=0.01: f"tl.where({x} >= 0.0, {x}, {_f(slope)} * {x})",
    aten.elu: _elu,
    aten.selu: lambda x: _elu(x, 1.6732632423543772, 1.0507009873554805),
    aten.celu: lambda x, alpha=1.0: _elu(x, alpha, 1.0, 1.0 / alpha),
    aten.hardsigmoid: lambda x: f"(tl.minimum(tl.maximum({x} + 3.0, 0.0), 6.0) / 6.0)",
    aten.hardswish: lambda x: f"({x} * tl.minimum(tl.maximum({x} + 3.0, 0.0), 6.0) / 6.0)",
    aten.dropout: lambda x, p=0.5, train=False: x if not train or p == 0 else None,
    aten.clone: lambda x, **_: x,
    aten.to: lambda x, *a, **k: x,
    aten._to_copy: lambda x, **k: x,
    aten.type_as: lambda x, other: x,
}


def pointwise_expr(node, value_of):
    """The Triton expression for pointwise `node`, or None when it is not a supported pointwise op.

    `value_of(arg)` turns an fx argument (node or scalar) into an expression or a Python scalar.
    """
    emit = POINTWISE.get(packet(node))
    if emit is None:
        return None
    args = [value_of(a) for a in node.args]
    kwargs = {k: value_of(v) for k, v in node.kwargs.items() if k not in ("memory_format", "dtype",
                                                                           "layout", "device",
                                                                           "pin_memory",
                                                                           "non_blocking", "copy")}
    args = [_f(a) if isinstance(a, (int, float)) and not isinstance(a, bool) and i < 2
            and packet(node) not in (aten.pow,) else a for i, a in enumerate(args)]
    if packet(node) in (aten.clamp, aten.clamp_min, aten.clamp_max):
        args = [_f(a) if isinstance(a, (int, float)) else a for a in args]
        kwargs = {k: (_f(v) if isinstance(v, (int, float)) else v) for k, v in kwargs.items()}
    try:
        return emit(*args, **kwargs)
    except TypeError:
        return None
