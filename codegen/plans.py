"""Kernel plans: what the scheduler decides for one kernel, as a plain data object.

The scheduler (codegen.lower) turns the graph into plans; the emitter (emit.Kernel, built by
kernels.build_pointwise / build_row) and the renderer (launchers.py) only read them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import Node

POINTWISE, ROW = "pointwise", "row"
ROW_STRATEGIES = ("persistent", "looped", "split", "tiled")


@dataclass(frozen=True, eq=False)
class KernelPlan:
    node: Node                   # the value the kernel stores (its first output)
    outputs: tuple               # node, and sibling reductions computed in the same pass over their input
    family: str = POINTWISE      # POINTWISE: a flat 1-D grid; ROW: rows x columns
    strategy: str | None = None  # ROW: persistent (whole rows in registers), looped (a column loop),
                                 # split (programs share a row, writing partials), tiled (elementwise tiles)
    space: tuple = ()            # ROW: the iteration space's sizes
    reduced: tuple = ()          # ROW: the dims laid along the columns (reduced, scanned or tiled)
    split: int = 0               # split: programs per row
    strided: bool = False        # ROW: the reduced dims are not innermost (rows are the contiguous dim)
    pool: bool = False           # tiled: the kernel computes a pool's windows (several reads an output)

    @property
    def launch(self) -> tuple:
        return (self.family, self.strategy)
