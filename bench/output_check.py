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

import copy

import torch

from harness import compare
from harness.float64_opinion import within_reference_error

SLACK = 2.0  # a candidate may be this many times further from float64 than the reference is


def float64_evaluation(reference: torch.nn.Module, inputs: list):
    """The reference run in float64 on float64 copies of the inputs: on their device, else (out of
    memory: two float64 copies of multi-GB tensors) on the host; None if it does not run so."""
    devices = [x.device for x in inputs if isinstance(x, torch.Tensor)][:1]
    for device in dict.fromkeys(devices + [torch.device("cpu")]):
        try:
            model = copy.deepcopy(reference).to(device).double()
            wide = [x.to(device).double() if isinstance(x, torch.Tensor) and x.is_floating_point()
                    else (x.to(device) if isinstance(x, torch.Tensor) else x) for x in inputs]
            with torch.no_grad():
                return model(*wide)
        except torch.OutOfMemoryError:
            model = wide = None
            torch.cuda.empty_cache()
        except Exception:
            return None
    return None


def output_problem(got, expected, reference: torch.nn.Module, inputs: list) -> str | None:
    """None when `got` passes as the judge would pass it, else one sentence saying why not."""
    result, index = compare.compare_outputs(got, expected)
    if result.ok:
        return None
    truth = float64_evaluation(reference, inputs)
    if truth is not None and within_reference_error(got, expected, truth, SLACK):
        return None
    return f"output {index}: {result.problem}"
