"""What every kernel emitter shares: scopes of emitted lines, the exception that asks the scheduler
for a buffer, and size-expression helpers."""
from __future__ import annotations

import re

import torch

from .ir import Node

TL_DTYPE = {
    torch.float32: "tl.float32", torch.float16: "tl.float16", torch.bfloat16: "tl.bfloat16",
    torch.float64: "tl.float64", torch.int64: "tl.int64", torch.int32: "tl.int32",
    torch.int16: "tl.int16", torch.int8: "tl.int8", torch.uint8: "tl.uint8", torch.bool: "tl.int1",
}


class NeedMaterialize(Exception):
    def __init__(self, node: Node):
        super().__init__(node.name)
        self.node = node


class Scope:
    def __init__(self, parent: "Scope | None" = None):
        self.parent = parent
        self.lines: list[str] = []
        self.cache: dict = {}
        self.tail: list[str] = []

    def get(self, key):
        s = self
        while s is not None:
            if key in s.cache:
                return s.cache[key]
            s = s.parent
        return None


def _prod(sizes) -> str:
    parts = [s for s in sizes if s != "1"]
    if not parts:
        return "1"
    return " * ".join(p if re.fullmatch(r"\w+", p) else f"({p})" for p in parts)


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def _deps(*ds) -> str:
    out = set()
    for d in ds:
        out |= set(d)
    return "".join(sorted(out))


def _term(size: str) -> str:
    return size if re.fullmatch(r"\w+", size) else f"({size})"


def split_key(exprs, sizes) -> tuple:
    """The key of emit.Kernel.split_from: the index exprs and sizes of the dims larger than one."""
    return tuple((e, s) for e, s in zip(exprs, sizes) if s != "1")


def index_of(lin: str, sizes, d: int) -> str:
    """The index along dim `d` of the row-major flat offset `lin` over `sizes`."""
    inner = _prod(sizes[d + 1:])
    e = lin if inner == "1" else f"({lin} // {_term(inner)})"
    if any(x != "1" for x in sizes[:d]):
        e = f"({e} % {_term(sizes[d])})"
    return e
