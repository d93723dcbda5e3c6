"""The small graph IR the embedded generator lowers from.

`capture.capture()` turns a traced ATen graph into a `Graph` of `Node`s. Every node knows:

- `op`: a canonical op name (the ATen overload packet name, prims folded onto their ATen twins:
  "add", "exp", "sum", "amax", "view", "mm", ...),
- `kind`: how it is lowered (one of KINDS),
- `args`: operands: other `Node`s, Python scalars, or `Sym` (a host-side integer/float expression
  over the input-size symbols, e.g. "s0*s1"),
- `attrs`: op details normalised (reduction dims as non-negative ints, keepdim, ...),
- `shape`: one size expression string per dim ("s0", "s1 // 4", "1"; literal ints are digits),
  `hint`: the concrete sizes seen while tracing, `dtype`: the torch dtype of the result.

Sizes are symbolic so the emitted code reads them from its inputs at run time: the same file runs
on the full shapes and on shrunk ones. `Graph.symbols` says where each size symbol comes from
(which graph input, which dim) so a launcher can bind `s0 = x.shape[0]`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# How each node is lowered.
INPUT = "input"          # a graph input: a parameter, a buffer or a forward() argument
CONST = "const"          # a tensor made of one scalar (full, scalar_tensor, zeros_like ...)
POINTWISE = "pointwise"  # elementwise math, casts, comparisons, where
REDUCTION = "reduction"  # sum/amax/amin/prod/argmax/argmin over some dims
SCAN = "scan"            # cumsum/cumprod along one dim
VIEW = "view"            # data movement that is only index math: view, permute, expand, slice, flip, cat, pad
POOL = "pool"            # windowed max/avg pooling
EXTERN = "extern"        # matmul / convolution / attention: lowered by codegen.extern
KINDS = (INPUT, CONST, POINTWISE, REDUCTION, SCAN, VIEW, POOL, EXTERN)


class Unsupported(Exception):
    """The reference uses something the embedded generator cannot lower; str() is the reason,
    "unsupported: <what>"."""


@dataclass(frozen=True)
class Sym:
    """A host-side scalar: a Python expression over size symbols (e.g. "s0*s1"), and its traced value."""

    expr: str
    hint: float | int

    def __str__(self) -> str:
        return self.expr


@dataclass(eq=False)
class Node:
    name: str
    op: str
    kind: str
    args: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    shape: tuple = ()
    hint: tuple = ()
    dtype: torch.dtype = torch.float32
    target: object = None  # the ATen overload it came from (None for synthetic nodes)

    @property
    def inputs(self) -> list["Node"]:
        """The operand nodes, in order (scalars and Syms left out)."""
        return [a for a in _flatten(self.args) if isinstance(a, Node)]

    @property
    def numel_hint(self) -> int:
        n = 1
        for s in self.hint:
            n *= int(s)
        return n

    def __repr__(self) -> str:
        ops = ", ".join(a.name if isinstance(a, Node) else repr(a) for a in _flatten(self.args))
        return f"{self.name} = {self.op}[{self.kind}]({ops}) {list(self.shape)} {self.dtype}"


def _flatten(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flatten(a)
        else:
            yield a


@dataclass
class Graph:
    """A captured forward: nodes in topological order.

    `inputs` are the INPUT nodes in call order: first the module's state (`state_names[i]` is the
    state_dict key of `inputs[i]`), then forward()'s arguments (`arg_names`).
    `outputs` are what forward returns (a Node or a Python scalar each); `returns_tuple` says
    whether forward returned a tuple/list or a single tensor.
    `symbols` maps a size symbol ("s0") to (input position, dim) where it can be read at run time.
    """

    nodes: list[Node]
    inputs: list[Node]
    outputs: list
    state_names: list[str]
    arg_names: list[str]
    symbols: dict[str, tuple[int, int]]
    returns_tuple: bool = False

    def users(self) -> dict[Node, list[Node]]:
        out: dict[Node, list[Node]] = {n: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n)
        return out

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def dump(self) -> str:
        return "\n".join(repr(n) for n in self.nodes) + "\nreturn " + ", ".join(
            o.name if isinstance(o, Node) else repr(o) for o in self.outputs)
