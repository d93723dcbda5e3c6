"""Extern ops: matmul family, scaled dot-product attention and convolutions, with fused epilogues.

Contract (called by `codegen/lower.py` when the captured graph contains an extern op)
-----------------------------------------------------------------------------------------
    lower_extern(task_source, traced=None, *, tunables=None, target="cuda") -> ExternLowering

- `task_source`: the KernelBench task file's source (`class Model`, `get_inputs`,
  `get_init_inputs`).
- `traced`: optional `codegen.capture.Traced`, the forward as `codegen.capture.trace_templates`
  traces it (on fake tensors, before autograd's decompositions), so `aten.linear`, `aten.matmul`,
  `aten.conv2d` and `aten.scaled_dot_product_attention` are still whole. When None, it is traced
  here. (The decomposed forms `aten.mm/bmm/addmm/mv/convolution` are accepted too.)
- `tunables`: flat dict overriding defaults; keys are those of `ExternLowering.space`
  (e.g. ``{"mm.BLOCK_M": 64, "mm.num_warps": 4, "attn.BLOCK_N": 32, "ew.BLOCK_SIZE": 2048}``).
  Unknown keys are an error (ok=False), values outside the space are allowed.
- `target`: "cuda" (H100 defaults). The same code runs under `TRITON_INTERPRET=1` on CPU.

Returns `ExternLowering(ok, code, reason, kernels, space, tunables)`, field for field the shape of
`codegen.Lowering`:
- ok/code: one self-contained file defining `class ModelNew(nn.Module)`; its `__init__` is the
  reference's own (same signature, same parameter names, so `load_state_dict` works); its forward
  runs every op in Triton kernels, except convolutions which stay in torch (cuDNN) with their
  epilogue fused into one Triton kernel (2-D ones on a channels-last copy of the input, made by a
  Triton transpose, their epilogue writing the NCHW result: conv_nhwc.py).
- reason: when ok is False, "unsupported: <op>" (or the error), never a silent fallback.
- kernels: names of the `@triton.jit` kernels emitted.
- space: the declared search space, {key: [candidate values]} for the templates used.
- tunables: the values used (defaults for `target` and the task's shapes, then overrides).

Extern ops: linear, matmul, mm, bmm, mv, addmm, baddbmm, two-operand einsum of matmul form,
scaled_dot_product_attention (no attn_mask/dropout), conv1d/2d/3d and conv_transpose; diag(v) @ B
(a row scaling) and tril/triu anywhere (operands and products of a matmul, or elementwise).

What is lowered: each extern op starts a group; the pointwise ops that follow it (bias, activations,
scaling, residual adds, tril/triu of a product) are fused into its kernel's epilogue, applied to the
fp32 accumulator before the store. Pointwise ops not fed by an extern op get one fused pointwise
kernel per chain. Views (transpose, permute, view, unsqueeze, expand, t) become strided views, never
copies; sizes in view/reshape/expand follow the inputs' sizes, so a file lowered at full size also
runs on shrunk inputs. Reductions (sum, mean, softmax, norms) anywhere in such a graph are not
lowered here yet: "unsupported: <op>".

`EXTERN_OPS` lists the ATen overload packets this package owns; `has_extern(graph)` says whether
an fx graph contains one (what `lower.py` uses to dispatch here).
"""
from __future__ import annotations

from codegen.extern.ops import EXTERN_OPS, has_extern
from codegen.extern.file import ExternLowering, lower_extern

__all__ = ["EXTERN_OPS", "ExternLowering", "has_extern", "lower_extern"]
