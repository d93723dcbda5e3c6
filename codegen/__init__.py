"""The embedded (no-LLM) generator: lowers a KernelBench task's `Model.forward` to readable Triton.

    lower(task_source, *, tunables=None, target="cuda") -> Lowering(ok, code, reason, kernels, space, tunables)
    lower_to_dict(task_source, tunables=None, target="cuda") -> dict   (the same, JSON-ready)
    neighbour(space, tunables, seed) -> dict                           (a nearby point, for searches)

Pipeline: capture.py (trace to an ATen graph, classify nodes: ir.py; generalize.py turns sizes the
trace baked in back into input sizes) -> rewrites.py (online softmax statistics; few-long-row and
strided reductions split into partials + combines) -> lower.py (group nodes into kernels, inline
the combines, render the file) -> kernels.py (pointwise / row / tiled kernel skeletons) over
emit.py (values as index arithmetic, reductions in one pass per input, scans, pooling) and
pointwise.py (Triton expressions).
Graphs with matmul / convolution / attention go to codegen.extern. Imports only torch, triton and
the standard library.
"""
from .lower import Lowering, lower, lower_to_dict
from .tunables import DEFAULTS, SPACE, neighbour

__all__ = ["DEFAULTS", "Lowering", "SPACE", "lower", "lower_to_dict", "neighbour"]
