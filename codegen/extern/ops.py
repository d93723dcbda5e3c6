"""Op tables: which ATen ops are extern and which are free views. Pointwise formulas come from
the one formula table, codegen.pointwise (epilogues run on the fp32 accumulator; the store casts).
"""
from __future__ import annotations

import torch

from codegen import ir
from codegen.capture import bind
from codegen.classify import TEMPLATE_OPS
from codegen.pointwise import OPS as FORMULA_OPS, NotPointwise, expression

aten = torch.ops.aten

def _packets(names) -> set:
    return {getattr(aten, name) for name in names}


# The extern op sets, from the one table in codegen.classify.
MATMUL_OPS = _packets(TEMPLATE_OPS["matmul"])
ATTENTION_OPS = _packets(TEMPLATE_OPS["attention"])
CONV_OPS = _packets(TEMPLATE_OPS["conv"])
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


def is_pointwise(node) -> bool:
    """Whether the shared formula table (codegen.pointwise) has a formula for this fx node's op."""
    p = packet(node)
    return p is not None and p.__name__ in FORMULA_OPS


def pointwise_expr(node, value_of):
    """The Triton expression for pointwise fx `node`, or None when the formula table has none.

    `value_of(arg)` turns an fx argument (node or scalar) into an expression or a Python scalar.
    """
    if not is_pointwise(node):
        return None
    attrs = {k: value_of(v) for k, v in bind(node.target, node.args, node.kwargs).items()}
    val = node.meta.get("val")
    dtype = val.dtype if isinstance(val, torch.Tensor) else torch.float32
    ir_node = ir.Node(name=node.name, op=packet(node).__name__, kind=ir.POINTWISE, attrs=attrs, dtype=dtype)
    try:
        return expression(ir_node, operand=lambda v: v)
    except NotPointwise:
        return None
