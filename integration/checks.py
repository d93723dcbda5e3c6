"""Checks that run user code and generated code: only ever inside a worker process.

Every function here is importable as "integration.checks:NAME", takes JSON-able keyword arguments
and returns a JSON-able dict with at least `ok` and `message`, so a worker (`integration.worker`,
or the harness sandbox) can run it and hand the answer back to the orchestrator.
"""
from __future__ import annotations

import importlib.util
import itertools
import sys
import types
from pathlib import Path

import torch

from harness.task_loading import shrink_task

_counter = itertools.count()

TOLERANCES = {torch.float16: (1e-2, 1e-2), torch.bfloat16: (2e-2, 2e-2)}
DEFAULT_TOLERANCE = (1e-4, 1e-4)  # (atol, rtol) for float32 and wider


def load_module_from_path(path: str, extra_paths: tuple[str, ...] = ()) -> types.ModuleType:
    """Import a file under a fresh module name; its folder (and `extra_paths`) go on sys.path so
    that its own imports of sibling files (e.g. `{op}_generated`) resolve."""
    file = Path(path).resolve()
    for folder in (*extra_paths, str(file.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    name = f"_akg_op_{file.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_task_code(code: str, device: str) -> tuple[types.ModuleType, dict | None]:
    """The task as a module; on CPU its size constants are shrunk as the harness does, so a
    Triton kernel finishes in the interpreter. Returns the module and what was shrunk."""
    name = f"_akg_op_task_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = "<task>"
    sys.modules[name] = module
    exec(compile(code, "<task>", "exec"), module.__dict__)
    return module, (shrink_task(module) if device == "cpu" else None)


def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [item for part in value for item in _flatten(part)]
    if isinstance(value, dict):
        return [item for key in sorted(value) for item in _flatten(value[key])]
    return [value]


def compare_outputs(expected, actual) -> dict:
    """Same structure, shapes, dtypes and values (within the dtype's tolerance)."""
    expected_items, actual_items = _flatten(expected), _flatten(actual)
    if len(expected_items) != len(actual_items):
        return {"ok": False, "message": f"{len(actual_items)} outputs instead of {len(expected_items)}"}
    worst = 0.0
    for i, (want, got) in enumerate(zip(expected_items, actual_items)):
        if not isinstance(want, torch.Tensor):
            if want != got:
                return {"ok": False, "message": f"output {i}: {got!r} instead of {want!r}"}
            continue
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            described = (f"{tuple(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor)
                         else type(got).__name__)
            return {"ok": False,
                    "message": f"output {i}: {described} instead of {tuple(want.shape)} {want.dtype}"}
        atol, rtol = TOLERANCES.get(want.dtype, DEFAULT_TOLERANCE)
        if want.is_floating_point():
            diff = (got.float() - want.float()).abs()
            worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
            if not torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol, equal_nan=True):
                return {"ok": False, "max_abs_diff": worst,
                        "message": f"output {i} differs: max abs diff {worst:.3g} (atol {atol}, rtol {rtol})"}
        elif not torch.equal(got, want):
            return {"ok": False, "message": f"output {i} differs"}
    return {"ok": True, "max_abs_diff": worst, "outputs": len(expected_items), "message": "outputs match"}


def _to(value, device: str):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value


def _clone(values: list) -> list:
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def _float_dtype(module: torch.nn.Module):
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def _build_pair(reference_cls, candidate_cls, init_args: list, seed: int, dtype=None):
    """Both modules built from the same seed (and cast to `dtype`, the task's parameter dtype),
    the candidate then loaded with the reference's state_dict (strict): if that fails, existing
    checkpoints would not load either."""
    torch.manual_seed(seed)
    reference = reference_cls(*init_args)
    torch.manual_seed(seed)
    candidate = candidate_cls(*init_args)
    dtype = dtype or _float_dtype(candidate)
    if dtype is not None:
        reference, candidate = reference.to(dtype), candidate.to(dtype)
    ref_keys, cand_keys = set(reference.state_dict()), set(candidate.state_dict())
    if ref_keys != cand_keys:
        return None, None, (f"state_dict keys differ: missing {sorted(ref_keys - cand_keys)}, "
                            f"unexpected {sorted(cand_keys - ref_keys)}")
    candidate.load_state_dict(reference.state_dict())
    return reference.eval(), candidate.eval(), None


def _run_pair(reference, candidate, inputs: list, device: str) -> dict:
    with torch.no_grad():
        expected = reference(*_to(_clone(inputs), device))
        actual = candidate(*_to(_clone(inputs), device))
    return _with_shapes(compare_outputs(expected, actual), expected)


def _with_shapes(result: dict, outputs) -> dict:
    result["output_shapes"] = [list(o.shape) for o in _flatten(outputs) if isinstance(o, torch.Tensor)]
    return result


def _task_inputs(task, seed: int) -> list:
    torch.manual_seed(seed + 1)
    return list(task.get_inputs())


def _compare_target(reference_target, candidate_target, task, seed: int, device: str) -> dict:
    if isinstance(reference_target, type):
        init_args = list(task.get_init_inputs())
        # The task's Model may cast its parameters to the inputs' dtype (fp16/bf16 tasks).
        dtype = _float_dtype(task.Model(*init_args))
        reference, candidate, problem = _build_pair(reference_target, candidate_target, init_args, seed, dtype)
        if problem:
            return {"ok": False, "message": problem}
        result = _run_pair(reference.to(device), candidate.to(device), _task_inputs(task, seed), device)
    else:
        inputs = _task_inputs(task, seed)
        with torch.no_grad():
            expected = reference_target(*_to(_clone(inputs), device))
            actual = candidate_target(*_to(_clone(inputs), device))
        result = _with_shapes(compare_outputs(expected, actual), expected)
    return result


def check_extracted(source_path: str, target_name: str, task_code: str, device: str = "cpu",
                    seed: int = 0) -> dict:
    """The extracted task's Model runs on get_inputs() and gives the same outputs as the target
    imported from the user's file (same seed, same weights, same inputs)."""
    original = load_module_from_path(source_path)
    task, shrunk = load_task_code(task_code, device)
    target = getattr(original, target_name)
    if isinstance(target, type):
        result = _compare_target(target, task.Model, task, seed, device)
    else:
        model = task.Model(*task.get_init_inputs()).to(device).eval()
        result = _compare_target(target, model, task, seed, device)
    return {**result, "shrunk": shrunk}


def check_integrated(source_path: str, integrated_path: str, target_name: str, task_code: str,
                     device: str = "cpu", seed: int = 0, call_shapes: list | None = None) -> dict:
    """The integrated file's target (now backed by ModelNew) gives the same outputs as the
    original target, and loads the original's state_dict: at the task's shapes, then at every
    input signature in `call_shapes` (the shapes the user's model really calls it with)."""
    original = load_module_from_path(source_path)
    integrated = load_module_from_path(integrated_path, extra_paths=(str(Path(source_path).parent),))
    task, shrunk = load_task_code(task_code, device)
    reference, candidate = getattr(original, target_name), getattr(integrated, target_name)
    result = _compare_target(reference, candidate, task, seed, device)
    checked = []
    for signature in (call_shapes or []) if result["ok"] else []:
        shapes = [tuple(arg["shape"]) for arg in signature]
        at = _compare_at_call(reference, candidate, task, signature, seed, device)
        if not at["ok"]:
            called = " and ".join(str(s) for s in shapes)
            return {**at, "shrunk": shrunk, "message": f"at {called}, a shape the model calls {target_name} "
                                                        f"with: {at['message']}"}
        checked.append(shapes)
    if result["ok"]:
        also = f" (also at the traced call shapes {', '.join(str(s) for s in checked)})" if checked else ""
        result["message"] = f"{target_name} from {Path(integrated_path).name} matches the original{also}"
        result["call_shapes_checked"] = [[list(s) for s in shapes] for shapes in checked]
    return {**result, "shrunk": shrunk}


def _compare_at_call(reference_target, candidate_target, task, signature: list, seed: int, device: str) -> dict:
    """Compare the two targets on random inputs shaped like one traced call."""
    torch.manual_seed(seed + 2)
    inputs = [torch.randn(*arg["shape"], dtype=getattr(torch, arg["dtype"])) for arg in signature]
    if isinstance(reference_target, type):
        init_args = list(task.get_init_inputs())
        dtype = _float_dtype(task.Model(*init_args))
        reference, candidate, problem = _build_pair(reference_target, candidate_target, init_args, seed, dtype)
        if problem:
            return {"ok": False, "message": problem}
        return _run_pair(reference.to(device), candidate.to(device), inputs, device)
    with torch.no_grad():
        expected = reference_target(*_to(_clone(inputs), device))
        actual = candidate_target(*_to(_clone(inputs), device))
    return _with_shapes(compare_outputs(expected, actual), expected)


MAX_TRACED_SIGNATURES = 4
MAX_TRACED_ELEMENTS = 1 << 20  # larger calls are left to a GPU run: the interpreter would crawl


def trace_target_calls(source_path: str, target_name: str, device: str = "cpu") -> dict:
    """Run the user's file as a script (its `if __name__ == "__main__":` block is how it calls its
    model) and record the input shapes every instance of the class `target_name` is called with.
    Returns {"ok", "calls": [[{"shape", "dtype"}, ...], ...] (distinct, at most a few), "message"}."""
    import contextlib
    import io
    import runpy

    calls: list = []

    def record(module, args):
        if type(module).__name__ != target_name or not args:
            return
        if not all(isinstance(a, torch.Tensor) and a.is_floating_point() for a in args):
            return
        signature = [{"shape": list(a.shape), "dtype": str(a.dtype).removeprefix("torch.")} for a in args]
        if signature not in calls and sum(a.numel() for a in args) <= MAX_TRACED_ELEMENTS:
            calls.append(signature)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            runpy.run_path(source_path, run_name="__main__")
    except BaseException as exc:  # the user's script failing is not our failure: keep what ran
        return {"ok": True, "calls": calls[:MAX_TRACED_SIGNATURES],
                "message": f"the script stopped ({type(exc).__name__}); {len(calls)} call shape(s) traced"}
    finally:
        handle.remove()
    return {"ok": True, "calls": calls[:MAX_TRACED_SIGNATURES], "message": f"{len(calls)} call shape(s) traced"}


def compare_models(source_path: str, integrated_path: str, model_name: str, init_args: list,
                   input_shapes: list[list[int]], device: str = "cpu", seed: int = 0) -> dict:
    """A whole model (e.g. the network that uses the target) built from the original file and
    from the integrated one gives the same outputs on random float32 inputs."""
    original = load_module_from_path(source_path)
    integrated = load_module_from_path(integrated_path, extra_paths=(str(Path(source_path).parent),))
    reference, candidate, problem = _build_pair(
        getattr(original, model_name), getattr(integrated, model_name), init_args, seed)
    if problem:
        return {"ok": False, "message": problem}
    torch.manual_seed(seed + 1)
    inputs = [torch.randn(*shape) for shape in input_shapes]
    return _run_pair(reference.to(device), candidate.to(device), inputs, device)
