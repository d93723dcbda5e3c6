"""What kind of work each ATen op is: the fusion analysis fuses pointwise ops, reductions and
views between the heavy ops (matmuls, attention, convolutions) that stay vendor kernels."""
from __future__ import annotations

import torch

HEAVY = ("mm", "addmm", "bmm", "baddbmm", "matmul", "convolution", "_convolution", "linear",
         "embedding", "_embedding_bag")
REDUCTIONS = {"_softmax", "_log_softmax", "softmax", "log_softmax", "native_layer_norm", "var_mean",
              "native_group_norm", "_native_batch_norm_legit_no_training", "logsumexp", "layer_norm"}
COPIES = {"_to_copy", "clone", "copy", "copy_", "cat", "where", "masked_fill", "_unsafe_view_copy",
          "lift_fresh", "lift_fresh_copy", "contiguous"}
VIEWS = {"view", "_unsafe_view", "reshape", "expand", "unsqueeze", "squeeze", "transpose", "permute", "t",
         "slice", "select", "alias", "detach", "as_strided", "split", "unbind", "chunk", "narrow",
         "unflatten", "flatten"}

ELEMENT_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
                 "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8}


def short_name(op: str) -> str:
    """'aten.mul.Tensor' → 'mul'."""
    parts = op.split(".")
    return parts[1] if len(parts) > 2 else parts[-1]


def categorize(func) -> str:
    name = func._schema.name.split("::")[-1]
    tags = set(func.tags)
    if any(h in name for h in ("attention", "flash", "efficient")) or name in HEAVY:
        return "heavy"
    if name in VIEWS or func.is_view:
        return "view"
    if torch.Tag.reduction in tags or name in REDUCTIONS:
        return "reduction"
    if torch.Tag.pointwise in tags or name in COPIES:
        return "pointwise"
    if not any(isinstance(a.type, torch.TensorType) for a in func._schema.arguments):
        return "factory"
    return "other"


def tensor_bytes(shape: list[int], dtype: str) -> int:
    count = 1
    for size in shape:
        count *= size
    return count * ELEMENT_BYTES.get(dtype, 4)
