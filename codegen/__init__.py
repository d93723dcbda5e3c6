"""The embedded (no-LLM) generator: lowers a KernelBench task's `Model.forward` to readable Triton.

    lower(task_source, *, tunables=None, target="cuda") -> Lowering(ok, code, reason, kernels, space, tunables)
    lower_to_dict(task_source, tunables=None, target="cuda") -> dict   (the same, JSON-ready)
    neighbour(space, tunables, seed) -> dict                           (a nearby point, for searches)

One compiler in three stages:
- capture (capture.py, classify.py, generalize.py): the reference built and traced on fake
  tensors (no storage: a task with 8 GB inputs lowers in a few hundred MB), to a classified ATen
  graph (ir.py) over symbolic sizes, op names kept; the reference's outermost calls recorded for
  naming (naming.py); sizes the trace baked in re-expressed over input sizes. The same front end
  traces before autograd's decompositions for the templates (capture.trace_templates: linear,
  matmul, conv2d, attention whole).
- schedule (lower.py, rewrites.py, shared_rows.py, row_sums.py, plans.py): rewrites for fewer
  passes (online softmax statistics, statistics of one tensor's rows in one pass, split
  reductions, sums linear in their rows' statistics read once), then
  the graph grouped into declared kernel plans (pointwise, row: persistent / looped / split /
  tiled). Graphs with matmul / convolution / attention go to the templates of codegen.extern,
  which plan groups around each template op; where a norm,
  reduction or pooling follows the product, the product stays a vendor call in forward and the
  rest is scheduled here (hybrid.py); convolutions with nothing else to compute (one, or
  several in a row: depthwise then pointwise) are each a Triton convolution, direct or an
  implicit GEMM (conv_direct.py, conv_gemm.py).
- render (emit.py over scope.py, views.py, pools.py, reductions.py, scans.py, kernels.py;
  pointwise.py, the one formula table; tidy.py; launchers.py; render.py, the one file assembly;
  batching.py):
  kernels named after what they compute, temporaries after their meaning, row kernels reading
  the inputs through their strides, only the helpers, tunables (tunables.py, the one space) and
  imports a file uses, and a ModelNew that keeps the reference's constructor and serves any
  leading dims the reference folds.
Imports only torch, triton and the standard library.
"""
from .lower import Lowering, lower, lower_to_dict
from .tunables import DEFAULTS, SPACE, neighbour

__all__ = ["DEFAULTS", "Lowering", "SPACE", "lower", "lower_to_dict", "neighbour"]
