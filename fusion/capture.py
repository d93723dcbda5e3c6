"""Capture a model's forward as a graph of ATen ops, on fake tensors.

The model runs eagerly under FakeTensorMode (no memory for weights or activations, so a 7B-wide
layer fits on any machine) with a dispatch mode on top that records every ATen op: its inputs
(as references to earlier nodes), non-tensor arguments, output shapes and dtypes, the module it
ran in and the source line that called it. Recording op by op rather than tracing a whole graph
means a forward that stops half way (data-dependent control flow, an op fake tensors cannot run)
still leaves every op before it, and the exception says which line stopped it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from fusion.ops import categorize

_TORCH_DIR = os.path.dirname(torch.__file__)
_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Ref:
    """A tensor argument: output `index` of node `node`."""

    node: int
    index: int = 0


@dataclass
class Node:
    id: int
    op: str  # "aten.mul.Tensor", or "input" / "param" / "const" for graph inputs
    kind: str  # input | param | const | compute
    category: str = ""  # for compute nodes: pointwise | reduction | view | heavy | factory | other
    args: list = field(default_factory=list)  # Refs and literals, as passed
    kwargs: dict = field(default_factory=dict)
    shapes: list[list[int]] = field(default_factory=list)  # one per tensor output
    dtypes: list[str] = field(default_factory=list)
    name: str = ""  # input / parameter name
    module: str = ""  # dotted module path ("model.layers.0.mlp")
    module_class: str = ""
    location: str = ""  # file:line of the model code that called the op

    def inputs(self) -> list[Ref]:
        found: list[Ref] = []
        for value in tree_flatten((self.args, self.kwargs))[0]:
            if isinstance(value, Ref):
                found.append(value)
        return found


@dataclass
class ModuleCall:
    """One call of a submodule: what it got (positional tensor args) and returned, and the
    nodes it ran (ids first < id <= last)."""

    path: str
    module_class: str
    inputs: list  # Ref or None per positional argument
    outputs: list[Ref] = field(default_factory=list)
    first: int = 0
    last: int = 0


@dataclass
class Capture:
    nodes: list[Node]
    calls: list[ModuleCall] = field(default_factory=list)
    error: str | None = None  # why the forward stopped early (None: it finished)

    def node(self, ref: Ref | int) -> Node:
        return self.nodes[ref.node if isinstance(ref, Ref) else ref]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _caller_location() -> str:
    """The innermost frame outside torch and this package: the model code that issued the op."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_TORCH_DIR) and not path.startswith(_HERE) and not path.startswith("<"):
            return f"{_short_path(path)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _short_path(path: str) -> str:
    """Installed libraries by their package path (transformers/models/...), user files in full."""
    marker = "site-packages" + os.sep
    return path.split(marker, 1)[1] if marker in path else path


class _ModuleStack:
    """The module currently running, from global forward hooks."""

    def __init__(self, root: torch.nn.Module, root_name: str):
        self.names = {id(m): (f"{root_name}.{n}" if n else root_name) for n, m in root.named_modules()}
        self.stack: list[tuple[str, str]] = []
        self.open_calls: list[ModuleCall] = []
        self.calls: list[ModuleCall] = []
        self.recorder = None  # set by the recorder: maps tensors to node refs
        self._handles = []

    def __enter__(self):
        def pre(module, args):
            path, cls = self.names.get(id(module), type(module).__name__), type(module).__name__
            self.stack.append((path, cls))
            refs = self.recorder.refs if self.recorder else {}
            inputs = [refs.get(id(a)) if isinstance(a, torch.Tensor) else None for a in args]
            first = len(self.recorder.nodes) - 1 if self.recorder else 0
            self.open_calls.append(ModuleCall(path, cls, inputs, first=first))

        def post(module, _args, out):
            if self.stack:
                self.stack.pop()
            if self.open_calls:
                call = self.open_calls.pop()
                refs = self.recorder.refs if self.recorder else {}
                call.outputs = [refs.get(id(t)) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
                call.last = len(self.recorder.nodes) - 1 if self.recorder else 0
                self.calls.append(call)

        self._handles = [torch.nn.modules.module.register_module_forward_pre_hook(pre),
                         torch.nn.modules.module.register_module_forward_hook(post)]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self.stack.clear()

    @property
    def current(self) -> tuple[str, str]:
        return self.stack[-1] if self.stack else ("", "")


class _Recorder(TorchDispatchMode):
    def __init__(self, modules: _ModuleStack):
        super().__init__()
        self.nodes: list[Node] = []
        self.refs: dict[int, Ref] = {}
        self.keep: list = []  # tensors stay alive so their ids are never reused
        self.modules = modules
        modules.recorder = self

    def add_source(self, tensor: torch.Tensor, kind: str, name: str) -> None:
        node = Node(id=len(self.nodes), op=kind, kind=kind, name=name, shapes=[list(tensor.shape)],
                    dtypes=[_dtype_name(tensor.dtype)])
        self.nodes.append(node)
        self.refs[id(tensor)] = Ref(node.id)
        self.keep.append(tensor)

    def _ref(self, value):
        if isinstance(value, torch.Tensor):
            ref = self.refs.get(id(value))
            if ref is None:  # a tensor made outside any op we saw (e.g. a Python constant)
                self.add_source(value, "const", f"const{len(self.nodes)}")
                ref = self.refs[id(value)]
            return ref
        return value  # ints, floats, lists, dtypes...: kept as passed

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outputs:  # aten.device, sym sizes...: nothing to fuse
            return out
        module, module_class = self.modules.current
        node = Node(id=len(self.nodes), op=_op_name(func), kind="compute", category=categorize(func),
                    args=list(tree_map(self._ref, list(args))), kwargs=tree_map(self._ref, dict(kwargs)),
                    module=module, module_class=module_class, location=_caller_location())
        node.shapes = [list(t.shape) for t in outputs]
        node.dtypes = [_dtype_name(t.dtype) for t in outputs]
        self.nodes.append(node)
        for index, tensor in enumerate(outputs):
            self.refs[id(tensor)] = Ref(node.id, index)  # in-place ops: the newest writer wins
            self.keep.append(tensor)
        return out


def _op_name(func) -> str:
    return f"aten.{func._schema.name.split('::')[-1]}.{func._overloadname}"


def capture(build, make_inputs, *, root_name: str = "model", forward_kwargs: dict | None = None) -> Capture:
    """Build the model and its inputs with `build()` / `make_inputs(model)` inside fake mode, run
    its forward once and record it. Never raises for a forward that fails: the nodes recorded so
    far come back with `error` saying which op and line stopped it."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        model = build()
        inputs = make_inputs(model)
    modules = _ModuleStack(model, root_name)
    recorder = _Recorder(modules)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        recorder.add_source(tensor, "param", f"{root_name}.{name}")
    for i, tensor in enumerate(inputs):
        if isinstance(tensor, torch.Tensor):
            recorder.add_source(tensor, "input", f"input{i}")
    error = None
    try:
        with torch.no_grad(), fake, modules, recorder:
            model(*inputs, **(forward_kwargs or {}))
    except Exception as exc:  # the forward stopped: keep what was recorded, say where
        error = _describe_failure(exc, recorder)
    return Capture(nodes=recorder.nodes, calls=sorted(modules.calls, key=lambda c: c.first), error=error)


def _describe_failure(exc: Exception, recorder: _Recorder) -> str:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not f.filename.startswith(_TORCH_DIR) and not f.filename.startswith(_HERE)]
    where = f" at {user[-1].filename}:{user[-1].lineno} ({user[-1].line.strip()})" if user and user[-1].line else ""
    last = next((n for n in reversed(recorder.nodes) if n.kind == "compute"), None)
    after = f"; last op captured: {last.op}" + (f" at {last.location}" if last and last.location else "") if last else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"the forward could not be captured{where}: {type(exc).__name__}: {first}{after}"
