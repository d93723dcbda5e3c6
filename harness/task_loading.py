"""Load KernelBench task and candidate files, and shrink a task's sizes for the CPU interpreter."""
from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import torch

MAX_INPUT_ELEMENTS = 65536  # per input tensor, so the Triton interpreter finishes in seconds
_module_ids = itertools.count()


def load_module(path: str, role: str) -> ModuleType:
    """Execute a source file as a fresh module (registered in sys.modules: triton reads its source)."""
    path = str(Path(path).resolve())
    name = f"akg_{role}_{next(_module_ids)}_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(Path(path).parent)
    if parent not in sys.path:
        sys.path.append(parent)  # candidates may import helpers that sit beside them
    spec.loader.exec_module(module)
    return module


def _largest_input(task: ModuleType) -> int:
    # Meta tensors: probing a 1e9-element task costs nothing. Tasks that insist on real tensors
    # (e.g. they call .numpy()) are probed for real.
    try:
        with torch.device("meta"):
            inputs = task.get_inputs()
    except Exception:
        torch.manual_seed(0)
        inputs = task.get_inputs()
    return max((x.numel() for x in inputs if isinstance(x, torch.Tensor)), default=0)


def _reference_runs(task: ModuleType) -> bool:
    try:
        torch.manual_seed(0)
        model = task.Model(*task.get_init_inputs())
        with torch.no_grad():
            model(*task.get_inputs())
        return True
    except Exception:
        return False


def shrink_task(task: ModuleType, max_elements: int = MAX_INPUT_ELEMENTS) -> dict[str, list[int]] | None:
    """Halve the task's module-level integer constants, largest first, keeping only halvings that make
    the largest input smaller, until every input tensor has at most max_elements elements and the
    reference still runs. Mutates the module; returns {name: [original, shrunk]} or None."""
    namespace = vars(task)
    sizes = {name: value for name, value in namespace.items()
             if type(value) is int and value >= 2 and not name.startswith("_")}
    history: list[tuple[str, int]] = []
    largest = _largest_input(task)
    frozen: set[str] = set()
    while largest > max_elements:
        shrinkable = sorted((n for n in sizes if n not in frozen and namespace[n] >= 2),
                            key=lambda n: -namespace[n])
        if not shrinkable:
            break
        name = shrinkable[0]
        old = namespace[name]
        namespace[name] = old // 2
        try:
            smaller = _largest_input(task)
        except Exception:
            smaller = largest
        if smaller < largest:
            history.append((name, old))
            largest = smaller
        else:
            namespace[name] = old
            frozen.add(name)
    # Undo the last halvings until the reference runs again (e.g. a kernel larger than its image).
    while history and not _reference_runs(task):
        name, old = history.pop()
        namespace[name] = old
    changed = {name: [sizes[name], namespace[name]] for name in sizes if namespace[name] != sizes[name]}
    return changed or None


def load_task(path: str, *, shrink: bool) -> tuple[ModuleType, dict[str, list[int]] | None]:
    task = load_module(path, "task")
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(task, name):
            raise AttributeError(f"task file defines no {name}")
    return task, (shrink_task(task) if shrink else None)
