"""Fusion mode: find, rank, realize and integrate fused operators in a whole model.

capture (ATen ops on fake tensors) → regions (fusable groups, bytes moved, patterns) → render
(a region as a KernelBench task) → swaps (which module forward a kernel replaces) → analysis
(ranked opportunities) → integrate (apply_fusions / source rewrite, checked end to end).
Model code only ever runs in a worker: `analysis.analyse` and `checks.*` are worker entry points.
"""
