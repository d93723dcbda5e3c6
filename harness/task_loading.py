"""Load KernelBench task and candidate files, and shrink a task's sizes for the CPU interpreter."""
from __future__ import annotations

import ast
import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import torch

MAX_INPUT_ELEMENTS = 65536  # per input tensor, so the Triton interpreter finishes in seconds
REFERENCE_PROBE_FACTOR = 64  # undoing halvings stops this far above the target size
MADE_PER_INPUT = 8  # the largest tensor the reference makes, in inputs' worth of elements
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
    return _input_sizes(task)[0]


def _input_sizes(task: ModuleType) -> tuple[int, int]:
    """(elements of the largest input, elements of all inputs). Meta tensors: probing a 1e9-element
    task costs nothing. A task whose get_inputs() cannot run on meta tensors is probed through fake
    tensors, and only one that needs real values for real."""
    try:
        with torch.device("meta"):
            inputs = task.get_inputs()
    except Exception:
        from torch._subclasses.fake_tensor import FakeTensorMode
        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                inputs = task.get_inputs()
        except Exception:  # it needs real values (.numpy(), .item()): the last resort is a real probe
            torch.manual_seed(0)
            inputs = task.get_inputs()
    counts = [x.numel() for x in inputs if isinstance(x, torch.Tensor)]
    return max(counts, default=0), sum(counts)


def _largest_made(task: ModuleType) -> int | None:
    """Elements of the largest tensor the reference makes, from a forward on meta tensors; None
    where the reference cannot run on them (it reads values, or builds on the host)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LargestMade(TorchDispatchMode):
        elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            made = [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            self.elements = max([self.elements] + made)
            return out

    try:
        with torch.device("meta"):
            model = task.Model(*task.get_init_inputs())
            inputs = task.get_inputs()
            with LargestMade() as probe, torch.no_grad():
                model(*inputs)
    except Exception:
        return None
    return probe.elements


def _reference_runs(task: ModuleType, max_elements: int) -> bool:
    """Whether the reference runs at the current sizes; only tried on small sizes (the full size
    must never touch the host): above REFERENCE_PROBE_FACTOR x max_elements it counts as not running."""
    if _largest_input(task) > REFERENCE_PROBE_FACTOR * max_elements:
        return False
    try:
        torch.manual_seed(0)
        model = task.Model(*task.get_init_inputs())
        with torch.no_grad():
            model(*task.get_inputs())
        return True
    except Exception:
        return False


def _size_knobs(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level names bound to an integer computed from literals alone (`DIM = 4096`,
    `N = 2**20`, `B, D = 16, 64`), and the literal integers of a tuple or list (`input_shape =
    (32768,)`: knob "input_shape[0]"): the task's sizes. Names computed from other names
    (`HIDDEN = 4 * DIM`, `shape = (C, H, W)`) are derived and follow when the module re-runs."""
    knobs: dict[str, ast.expr] = {}

    def literal_int(node: ast.expr) -> bool:
        if any(isinstance(n, ast.Name) for n in ast.walk(node)):
            return False
        try:
            return type(ast.literal_eval(node)) is int
        except ValueError:
            try:
                return type(eval(compile(ast.Expression(node), "<size>", "eval"), {"__builtins__": {}})) is int
            except Exception:
                return False

    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            pairs = []
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    pairs.append((target, statement.value))
                elif isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Tuple) \
                        and len(target.elts) == len(statement.value.elts):
                    pairs.extend(zip(target.elts, statement.value.elts))
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
            pairs = [(statement.target, statement.value)]
        else:
            continue
        for target, value in pairs:
            if not isinstance(target, ast.Name):
                continue
            if literal_int(value):
                knobs[target.id] = value
            elif isinstance(value, (ast.Tuple, ast.List)):  # a shape: `input_shape = (32768,)`
                for index, element in enumerate(value.elts):
                    if literal_int(element):
                        knobs[f"{target.id}[{index}]"] = element
    return knobs


def _shape_element(name: str) -> tuple[str, int] | None:
    """("input_shape", 0) for the size knob "input_shape[0]", a literal tuple's element; else None."""
    if not name.endswith("]") or "[" not in name:
        return None
    base, index = name[:-1].split("[", 1)
    return base, int(index)


class _Rerun:
    """Re-executes a task's source with some of its size knobs replaced, so that everything the
    module computes from them (normalized_shape tuples, products, derived sizes) stays consistent."""

    def __init__(self, task: ModuleType, source: str):
        self.task, self.source = task, source
        self.tree = ast.parse(source)
        self.knobs = _size_knobs(self.tree)
        self.filename = getattr(task, "__file__", None) or "<task>"

    def run(self, values: dict[str, int]) -> None:
        tree = ast.parse(self.source)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        targets.append((target, node, "value"))
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        targets.extend((t, node.value.elts, i) for i, t in enumerate(target.elts))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                targets.append((node.target, node, "value"))
            for target, holder, slot in targets:
                if not isinstance(target, ast.Name):
                    continue
                if target.id in values and target.id in self.knobs:
                    constant = ast.copy_location(ast.Constant(values[target.id]), target)
                    if isinstance(holder, list):
                        holder[slot] = constant
                    else:
                        setattr(holder, slot, constant)
                shape = holder[slot] if isinstance(holder, list) else getattr(holder, slot)
                if isinstance(shape, (ast.Tuple, ast.List)):
                    for index, element in enumerate(shape.elts):
                        name = f"{target.id}[{index}]"
                        if name in values and name in self.knobs:
                            shape.elts[index] = ast.copy_location(ast.Constant(values[name]), element)
        ast.fix_missing_locations(tree)
        exec(compile(tree, self.filename, "exec"), vars(self.task))


def _knob_value(namespace: dict, name: str):
    """A size knob's value in the loaded module: the integer, or a shape's element."""
    element = _shape_element(name)
    if element is None:
        return namespace.get(name)
    shape = namespace.get(element[0])
    return shape[element[1]] if isinstance(shape, (tuple, list)) and element[1] < len(shape) else None


def _task_source(task: ModuleType, source: str | None) -> str | None:
    if source is not None:
        return source
    path = getattr(task, "__file__", None)
    try:
        return Path(path).read_text(encoding="utf-8") if path and Path(path).is_file() else None
    except OSError:
        return None


def shrink_task(task: ModuleType, max_elements: int = MAX_INPUT_ELEMENTS,
                source: str | None = None) -> dict[str, list[int]] | None:
    """Halve the task's module-level size constants, largest first, keeping only halvings that make
    the largest input smaller, until every input tensor has at most max_elements elements, then
    until no tensor the reference makes (an output, an intermediate) has more than MADE_PER_INPUT
    times that, as long as the reference still runs. A size whose halving alone breaks the task
    is halved together with the sizes equal to it, a shape's elements among them. Sizes are probed
    on meta/fake tensors: nothing runs at the full size.
    Where the task's source is known (its file, or `source`), the module is re-executed with the new
    sizes, so every module-level value computed from them is shrunk with them; otherwise the
    constants are replaced in place. Mutates the module; returns {name: [original, shrunk]} or None."""
    namespace = vars(task)
    text = _task_source(task, source)
    rerun = None
    if text is not None:
        try:
            rerun = _Rerun(task, text)
        except SyntaxError:
            rerun = None
    if rerun is not None and not rerun.knobs:  # sizes set some other way (imported, computed): in place
        rerun = None
    if rerun is not None:
        sizes = {name: value for name in rerun.knobs if not name.startswith("_")
                 and type(value := _knob_value(namespace, name)) is int and value >= 2}
    else:
        sizes = {name: value for name, value in namespace.items()
                 if type(value) is int and value >= 2 and not name.startswith("_")}
    current = dict(sizes)

    def apply(values: dict[str, int]) -> None:
        current.update(values)
        if rerun is not None:
            rerun.run(current)
        else:
            namespace.update(values)

    history: list[dict[str, int]] = []  # each step's sizes before it
    # Where the reference runs on meta tensors, each halving is tried there: one that breaks it
    # (a LayerNorm sized by a knob that the convolution before it also reads) is not taken.
    runs_on_meta = _largest_made(task) is not None

    def halve_while(measure, too_big) -> None:
        """Halve the largest size knob while too_big(measure()), keeping a halving only where the
        measure drops (None: the halving broke the task); a knob whose halving does not qualify is
        left alone from then on."""
        value = measure()
        frozen: set[str] = set()

        def halved(names: list[str]):
            """(the measure with these knobs halved, whether the halving broke the task); the knobs
            stay halved only where the measure drops."""
            before = {n: current[n] for n in names}
            try:
                apply({n: v // 2 for n, v in before.items()})
                smaller = measure()
            except Exception:
                smaller = None
            if smaller is not None and smaller < value:
                history.append(before)
                return smaller, False
            apply(before)
            return None, smaller is None

        while value is not None and too_big(value):
            # a shape's elements move only with an integer knob of their size (below)
            shrinkable = sorted((n for n in sizes if n not in frozen and current[n] >= 2 and not _shape_element(n)),
                                key=lambda n: -current[n])
            if not shrinkable:
                break
            name = shrinkable[0]
            smaller, broke = halved([name])
            if broke:
                # Sizes equal by construction move together: hinge loss's (batch_size, *input_shape)
                # predictions times (batch_size,) targets broadcast only while the two are equal.
                partners = [n for n in sizes if n != name and n not in frozen and current[n] == current[name]]
                smaller = halved([name, *partners])[0] if partners else None
            if smaller is None:
                frozen.add(name)
            else:
                value = smaller

    # The inputs first. A halving counts when the largest input shrinks, or stays and the inputs
    # as a whole shrink: two equally large inputs that each have a dim the other lacks (a matmul's
    # M and N) only shrink one at a time.
    def input_sizes_while_it_runs():
        """The inputs' sizes; None where a reference that ran on meta tensors no longer does."""
        return None if runs_on_meta and _largest_made(task) is None else _input_sizes(task)

    halve_while(input_sizes_while_it_runs, lambda counts: counts[0] > max_elements)
    # Then what the reference makes from them: a transposed convolution's output can be 40 times
    # its input, and the interpreter's time goes with the tensors the kernels walk.
    halve_while(lambda: _largest_made(task), lambda made: made > MADE_PER_INPUT * max_elements)
    # Undo the last halvings until the reference runs again (e.g. a kernel larger than its image).
    while history and not _reference_runs(task, max_elements):
        apply(history.pop())
    changed = {name: [sizes[name], current[name]] for name in sizes if current[name] != sizes[name]}
    return changed or None


def load_task(path: str, *, shrink: bool) -> tuple[ModuleType, dict[str, list[int]] | None]:
    task = load_module(path, "task")
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(task, name):
            raise AttributeError(f"task file defines no {name}")
    return task, (shrink_task(task) if shrink else None)
