"""The Triton interpreter as the judge runs candidates on the CPU: two of its costs that change
no result are taken out. Each is applied only where the interpreter has the shape this code
expects (its internals are not a public API); elsewhere it runs as shipped."""
from __future__ import annotations

import dataclasses

import numpy as np


def interpret_like_the_gpu() -> None:
    """Applied in the judge's CPU worker before any candidate runs (and in the test session)."""
    from triton.runtime import interpreter

    _without_overflow_checks(interpreter)
    reduce_ops = getattr(interpreter, "ReduceOps", None)
    if reduce_ops is not None and all(hasattr(reduce_ops, name) for name in ("generic_reduce", "unravel", "to_tensor")):
        reduce_ops.generic_reduce = _tree_reduce


def _without_overflow_checks(interpreter) -> None:
    """The int32 overflow sanitizer widens every int32 addition, subtraction and product to 64
    bits and compares the result with the int32 range, then hands the check to an assertion that
    acts only in Triton's debug mode, which the judge does not use: the work is thrown away. It
    was half of an interpreted 3-D pooling kernel's time (47 -> 24 s a call)."""
    builder = getattr(interpreter, "interpreter_builder", None)
    options = getattr(builder, "options", None)
    if options is not None and getattr(options, "sanitize_overflow", False) and not getattr(options, "debug", False):
        builder.options = dataclasses.replace(options, sanitize_overflow=False)


def _tree_reduce(self, inputs):
    """`tl.reduce` with a combine function of the kernel's own (a NaN-propagating max, Welford's
    mean and M2), folded as a GPU folds it: halves combined elementwise, log2(n) calls on whole
    blocks. The interpreter called the combine once per element, in Python: 46 of a 47-second
    profile of a group norm + min kernel. Triton asks combine functions to be associative, and the
    GPU's order is a tree too; element i is combined with i + n/2, the lower index on the left."""
    import triton.language as tl

    original_axis = self.axis
    inputs, axis = self.unravel(inputs, self.axis)
    dtypes = [x.dtype for x in inputs]
    data = [x.handle.data for x in inputs]
    while data[0].shape[axis] > 1:
        n = data[0].shape[axis]
        half = n // 2
        left = [self.to_tensor(np.take(d, np.arange(half), axis=axis), t) for d, t in zip(data, dtypes)]
        right = [self.to_tensor(np.take(d, np.arange(half, 2 * half), axis=axis), t) for d, t in zip(data, dtypes)]
        combined = self.combine_fn.fn(*left, *right)
        combined = combined if isinstance(combined, tuple) else (combined,)
        shape = left[0].handle.data.shape
        merged = [np.broadcast_to(c.handle.data if isinstance(c, tl.core.tensor) else np.asarray(c), shape).astype(d.dtype)
                  for c, d in zip(combined, data)]
        if n % 2:  # the odd one out waits for the next round, after the combined halves
            merged = [np.concatenate([m, np.take(d, [n - 1], axis=axis)], axis=axis) for m, d in zip(merged, data)]
        data = merged
    results = []
    for d, t in zip(data, dtypes):
        d = np.take(d, 0, axis=axis)
        if self.keep_dims:
            d = np.expand_dims(d, axis) if original_axis is not None else d.reshape((1,) * len(inputs[0].shape))
        elif original_axis is None:
            d = d.item()
        results.append(self.to_tensor(d, t))
    return results
