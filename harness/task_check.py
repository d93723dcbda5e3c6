"""Task validation (the job behind harness.validate_task): the task loads, fits the device, runs,
is deterministic, takes random inputs and gives a usable output.

Memory: the footprint is estimated on fake tensors and checked against the device's free memory
before anything is allocated; on a CPU the sizes are shrunk first (nothing runs at the full size).
At most about three copies of the footprint are alive at once: inputs are drawn on the device
itself (not on the host and copied), the second seed's inputs are reduced to a sample at once, and
the determinism check re-draws the inputs from their seed instead of keeping a clone.
"""
from __future__ import annotations

import torch

from harness import compare, degenerate, memory
from harness import inputs as judge_inputs
from harness.errors import error_text
from harness.task_loading import load_task
from harness.tensor_values import fingerprint


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')}{list(value.shape)}"
    return f"{type(value).__name__}({value!r})"[:60]


def _same_samples(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and compare.tensors_equal(x, y) for x, y in zip(a, b))


def validate_job(task_path: str, device: str) -> dict:
    """Check that a task file is usable as a reference; returns a TaskCheck dict."""
    check = {"ok": False, "problems": [], "notes": [], "inputs": [], "outputs": [], "init_inputs": [],
             "shrunk": None, "footprint": None}
    problems = check["problems"]
    on_gpu = device != "cpu"
    target = torch.device("cuda" if on_gpu else "cpu")
    try:
        task, check["shrunk"] = load_task(task_path, shrink=not on_gpu)
    except Exception as error:
        problems.append(f"the task does not run: {error_text(error)}")
        return check
    try:
        check["footprint"] = memory.check_fits(task, on_gpu, shrunk=bool(check["shrunk"])).to_dict()
    except memory.TaskTooLarge as error:
        problems.append(str(error))
        return check
    try:
        init_inputs = task.get_init_inputs()
        check["init_inputs"] = [_describe(x) for x in init_inputs]
        torch.manual_seed(0)
        with torch.device(target):
            model = task.Model(*init_inputs).to(target).eval()
        second = fingerprint(judge_inputs.task_inputs(task, 2, target))
        first = judge_inputs.task_inputs(task, 1, target)
        check["inputs"] = [_describe(x) for x in first]
        before = fingerprint(first)
        with torch.no_grad():
            output = model(*first)
            if not _same_samples(before, fingerprint(first)):  # it writes its inputs: draw them again
                del first
                first = judge_inputs.task_inputs(task, 1, target)
            again = model(*first)
        outputs = compare.flatten(output)
        check["outputs"] = [_describe(x) for x in outputs]
    except Exception as error:
        problems.append(f"the task does not run: {error_text(error)}")
        return check
    input_tensors = [t for t in first if isinstance(t, torch.Tensor)]
    if not input_tensors:
        problems.append("get_inputs() returns no tensors")
    elif _same_samples(fingerprint(first), second):
        problems.append("get_inputs() gives the same tensors for every seed, so cached results cannot be caught")
    if not any(isinstance(x, torch.Tensor) for x in outputs):
        problems.append("forward() returns no tensors")
    if not compare.compare_outputs(again, output)[0].ok:
        problems.append("forward() is not deterministic: two calls on the same inputs differ")
    del again
    for index, out in enumerate(outputs):
        if isinstance(out, torch.Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all()):
            problems.append(f"output {index} contains NaN or Inf")
    if degenerate.all_zero(output):
        del output, outputs
        _informative, note = degenerate.informative_output(model, first, seed=1)
        check["notes"].append(note)
    elif degenerate.rounding_noise(model, first, output, target):
        del output, outputs
        _informative, note = degenerate.informative_output(model, first, seed=1, device=target, noise=True)
        check["notes"].append(note)
    check["ok"] = not problems
    return check
