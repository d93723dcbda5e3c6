"""Graphs where a matmul or convolution feeds work the extern templates do not fuse: a reduction,
a normalisation (layer / group / instance / batch norm), pooling, a scan.

The matmul or convolution stays a vendor call (cuBLAS / cuDNN, which the judge allows because
Triton work is fused around it), written in `ModelNew.forward` between the Triton launches; the
rest of the graph goes through the core schedule (codegen.lower) exactly as if the product were
one more input: pointwise epilogues fuse into the row kernel of the norm or into the pooling
kernel that reads the product. So `conv2d -> batch_norm -> relu -> max_pool2d` is one cuDNN call
and one Triton kernel, and `linear -> layer_norm` one cuBLAS call and one row kernel.

An operand of a vendor call is passed as it is when it is an input, another vendor result, or a
torch view of one (a weight's transpose, a reshape); anything computed is written by a Triton
kernel first.
"""
from __future__ import annotations

import torch

from . import ir
from .ir import Node, Sym, Unsupported

# View ops an operand of a vendor call may be (a torch view of a tensor, no copy)
_TORCH_VIEWS = {"permute", "view", "expand"}
# Short names of the vendor results in forward (what the value is)
_RESULT_NAMES = {"convolution": "conv_out", "_convolution": "conv_out", "addmm": "mm_out", "mm": "mm_out",
                 "bmm": "bmm_out", "baddbmm": "bmm_out", "mv": "mv_out", "dot": "dot_out"}
_OPS = {"convolution", "_convolution", "addmm", "mm", "bmm", "baddbmm", "mv", "dot"}


def eligible(graph: ir.Graph) -> bool:
    """Whether every extern node is a plain matmul or convolution and some other compute (which
    becomes Triton work) surrounds them."""
    externs = graph.of_kind(ir.EXTERN)
    if not externs or any(n.op not in _OPS for n in externs):
        return False
    return any(n.kind in (ir.POINTWISE, ir.REDUCTION, ir.SCAN, ir.POOL) for n in graph.nodes)


def prepare(graph: ir.Graph) -> set:
    """Name the vendor results after what they are and move convolution biases into the Triton
    work that follows; return the nodes a Triton kernel must write because a vendor call reads
    them (its operands that are not inputs or views of them)."""
    taken = {n.name for n in graph.nodes}
    for n in graph.of_kind(ir.EXTERN):
        n.name = _fresh(_RESULT_NAMES.get(n.op, n.op + "_out"), taken)
    for conv in [n for n in graph.of_kind(ir.EXTERN) if "convolution" in n.op]:
        _bias_into_epilogue(graph, conv, taken)
    needed = set()
    for n in graph.of_kind(ir.EXTERN):
        for a in n.inputs:
            _operand(a, needed)
    return needed


def _bias_into_epilogue(graph: ir.Graph, conv: Node, taken: set) -> None:
    """conv(x, w, b) becomes conv(x, w) + b per channel, the add a pointwise node that fuses into
    the Triton kernel reading the result: cuDNN adds a bias in a pass of its own over the whole
    output (3.7 ms of a 4.3 GB conv output on an H100)."""
    bias = conv.attrs.get("bias")
    if not isinstance(bias, Node):
        return
    rank = len(conv.shape)
    name = _fresh(f"{conv.name}_bias", taken)
    view = Node(name, "view", ir.VIEW, [bias], {"shape": ("1", conv.shape[1]) + ("1",) * (rank - 2)},
                ("1", conv.shape[1]) + ("1",) * (rank - 2), (1, conv.hint[1]) + (1,) * (rank - 2), bias.dtype,
                torch.ops.aten.view.default)
    added = Node(_fresh(f"{conv.name}_biased", taken), "add", ir.POINTWISE, [conv, view, 1],
                 {"self": conv, "other": view, "alpha": 1}, conv.shape, conv.hint, conv.dtype,
                 torch.ops.aten.add.Tensor)
    for n in graph.nodes:
        n.args = _replaced(n.args, conv, added)
        n.attrs = {k: _replaced(v, conv, added) for k, v in n.attrs.items()}
    graph.outputs = _replaced(graph.outputs, conv, added)
    conv.args = _replaced(conv.args, bias, None)
    conv.attrs["bias"] = None
    at = graph.nodes.index(conv) + 1
    graph.nodes[at:at] = [view, added]


def _replaced(value, old: Node, new):
    if value is old:
        return new
    if isinstance(value, (list, tuple)):
        return type(value)(_replaced(v, old, new) for v in value)
    return value


def _fresh(base: str, taken: set) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _operand(a: Node, needed: set) -> None:
    if a.kind in (ir.INPUT, ir.EXTERN):
        return
    if a.kind == ir.VIEW and a.op in _TORCH_VIEWS:
        return _operand(a.inputs[0], needed)
    needed.add(a)


def _expr(a, written: set) -> str:
    """An operand as a torch expression in forward."""
    if isinstance(a, Node):
        if a.kind in (ir.INPUT, ir.EXTERN) or a in written:
            return a.name
        x = _expr(a.inputs[0], written)
        if a.op == "permute":
            return f"{x}.permute({', '.join(str(d) for d in a.attrs['dims'])})"
        if a.op == "view":
            return f"{x}.reshape({', '.join(a.shape)}{',' if len(a.shape) == 1 else ''})"
        if a.op == "expand":
            return f"{x}.expand({', '.join(a.shape)})"
        raise Unsupported(f"unsupported: {a.op} as an operand of {a.name}")
    if isinstance(a, Sym):
        return a.expr
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(_expr(x, written) for x in a) + "]"
    return repr(a)


def statements(graph: ir.Graph, kernels: list) -> dict[int, list[str]]:
    """The vendor calls of forward, keyed by the index of the kernel launch they precede
    (len(kernels): after the last one). Called once the buffers have their final names."""
    written = {o for k in kernels for o in k.outputs}
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    firsts = [min(order[id(o)] for o in k.outputs) for k in kernels]
    out: dict[int, list[str]] = {}
    for n in graph.of_kind(ir.EXTERN):
        schema = n.target._schema
        args, kwargs = [], []
        for a in schema.arguments:
            text = _expr(n.attrs.get(a.name), written)
            (kwargs if a.kwarg_only else args).append(f"{a.name}={text}" if a.kwarg_only else text)
        # a Triton kernel after this reads the result flat: a contiguous copy if the library
        # returned another layout (a cuDNN channels-last output), free otherwise
        call = f"torch.ops.aten.{n.target._opname}.{n.target._overloadname}({', '.join(args + kwargs)}).contiguous()"
        at = next((i for i, f in enumerate(firsts) if f > order[id(n)]), len(kernels))
        out.setdefault(at, []).append(f"{n.name} = {call}  # {_vendor(n)}")
    return out


def _vendor(n: Node) -> str:
    return "cuDNN" if "convolution" in n.op else "cuBLAS"
