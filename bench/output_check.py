"""Whether a kernel's outputs agree with the reference, by the judge's rule.

The independent timing script (bench/do_bench_check.py) must call an output wrong exactly when the
harness would: the per-dtype tolerances of `harness.compare` (fp32: 1e-4), and, where those fail,
a float64 evaluation of the reference as a second opinion. A reference rounds too: torch's fp32
cumsum on a GPU carries its running total in fp32, so over 65536 terms it lands ~1e-3 from the
true prefix sums, and a kernel that accumulates in float64 is then "wrong" against it while being
the closer of the two. Such a kernel is right when it is no further from the float64 evaluation
than twice the reference's own worst error plus the tolerance: the judge's own rule,
`harness.float64_opinion.within_reference_error`; a kernel that is really wrong stays far outside.
"""
from __future__ import annotations

import torch

from harness import compare
from harness.float64_opinion import evaluate_in_float64, within_reference_error

SLACK = 2.0  # a candidate may be this many times further from float64 than the reference is


def output_problem(got, expected, reference: torch.nn.Module, inputs: list) -> str | None:
    """None when `got` passes as the judge would pass it, else one sentence saying why not."""
    result, index = compare.compare_outputs(got, expected)
    if result.ok:
        return None
    devices = [x.device for x in inputs if isinstance(x, torch.Tensor)]
    truth = evaluate_in_float64(reference, inputs, expected, devices[0] if devices else "cpu")
    if truth is not None and within_reference_error(got, expected, truth, SLACK):
        return None
    return f"output {index}: {result.problem}"
