"""What a target takes: constructor parameters and forward inputs, read from its definition, and
the literal arguments its use sites in the file pass it."""
from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from integration.literals import UNKNOWN, literal_value, module_constants, parameter_defaults
from integration.source import Definition, SourceFile, dotted_name

SCALAR_HINTS = {"int", "float", "bool", "str"}


@dataclass
class Param:
    name: str
    kind: str  # positional | vararg | keyword_only | varkw
    has_default: bool
    hint: str | None  # the annotation's dotted name, e.g. "float", "torch.Tensor"

    @property
    def is_scalar(self) -> bool:
        return self.hint in SCALAR_HINTS


def params_of(function: cst.FunctionDef, drop_self: bool) -> list[Param]:
    p = function.params
    found: list[Param] = []

    def add(param: cst.Param, kind: str) -> None:
        hint = dotted_name(param.annotation.annotation) if param.annotation else None
        found.append(Param(param.name.value, kind, param.default is not None, hint))

    for param in [*p.posonly_params, *p.params]:
        add(param, "positional")
    if isinstance(p.star_arg, cst.Param):
        add(p.star_arg, "vararg")
    for param in p.kwonly_params:
        add(param, "keyword_only")
    if p.star_kwarg is not None:
        add(p.star_kwarg, "varkw")
    if drop_self and found and found[0].kind == "positional":
        found = found[1:]
    return found


def find_method(source: SourceFile, definition: Definition, method: str) -> cst.FunctionDef | None:
    """`method` of the class or of its in-file base classes (None when torch provides it)."""
    by_name = {d.name: d for d in source.definitions() if d.kind == "class"}
    todo, seen = [definition], set()
    while todo:
        current = todo.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        for stmt in current.node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == method:
                return stmt
        for base in current.node.bases:
            name = dotted_name(base.value)
            if name in by_name:
                todo.append(by_name[name])
    return None


class _CallFinder(cst.CSTVisitor):
    """Calls `name(...)` anywhere in the module except inside the target's own definition, each
    with the function it appears in (whose parameter defaults can give argument values)."""

    def __init__(self, name: str, skip: cst.CSTNode) -> None:
        self.name, self.skip = name, skip
        self.functions: list[cst.FunctionDef] = []
        self.calls: list[tuple[cst.Call, cst.FunctionDef | None]] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return node is not self.skip

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node)  # popped in leave_FunctionDef, which runs even when skipped
        return node is not self.skip

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == self.name:
            self.calls.append((node, self.functions[-1] if self.functions else None))


def literal_arguments(call: cst.Call, params: list[Param], names: dict[str, object]) -> dict[str, object]:
    """The call's arguments that are literals, by parameter name (`f(x, 1e-6)` → {eps: 1e-6});
    `*args`/`**kwargs` at the call make the mapping unknowable, so nothing is returned."""
    values: dict[str, object] = {}
    positional = [p for p in params if p.kind == "positional"]
    for index, arg in enumerate(call.args):
        if arg.star:
            return {}
        if arg.keyword is None and index >= len(positional):
            continue
        name = arg.keyword.value if arg.keyword is not None else positional[index].name
        value = literal_value(arg.value, names)
        if value is not UNKNOWN:
            values[name] = value
    return values


def bind_call(call: cst.Call, params: list[Param], names: dict[str, object],
              defaults: dict[str, object]) -> list | None:
    """The call's arguments as a positional list of literal values for `params` (skipped ones
    filled in from their literal `defaults`), or None when some argument is not a literal or
    cannot be passed positionally."""
    values = literal_arguments(call, params, names)
    if len(values) != len(call.args):
        return None
    if any(p.kind != "positional" and p.name in values for p in params):
        return None  # keyword-only arguments cannot travel through get_init_inputs()
    positional = [p for p in params if p.kind == "positional"]
    last = max((i for i, p in enumerate(positional) if p.name in values), default=-1)
    result = []
    for param in positional[: last + 1]:
        if param.name in values:
            result.append(values[param.name])
        elif param.name in defaults:
            result.append(defaults[param.name])
        else:
            return None
    return result


def _use_sites(source: SourceFile, definition: Definition):
    """Each call of the target in the file, with the names whose literal values it can see:
    module constants and the literal defaults of the function it appears in."""
    finder = _CallFinder(definition.name, definition.node)
    source.module.visit(finder)
    constants = module_constants(source.module)
    for call, function in finder.calls:
        names = dict(constants)
        if function is not None:
            names.update(parameter_defaults(function, constants))
        yield call, names


def use_site_arguments(source: SourceFile, definition: Definition, params: list[Param],
                       defaults: dict[str, object]) -> list[list]:
    """Complete literal argument lists from the calls of the target in the file, in file order."""
    found = []
    for call, names in _use_sites(source, definition):
        bound = bind_call(call, params, names, defaults)
        if bound is not None:
            found.append(bound)
    return found


def use_site_literals(source: SourceFile, definition: Definition, params: list[Param]) -> dict[str, object]:
    """Per parameter, the first literal value a call in the file passes it."""
    found: dict[str, object] = {}
    for call, names in _use_sites(source, definition):
        for name, value in literal_arguments(call, params, names).items():
            found.setdefault(name, value)
    return found


def pass_through_call(function: cst.FunctionDef, callee: str) -> cst.Call:
    """`callee(a, b, *args, k=k, **kwargs)`: every parameter of `function` passed on as declared."""
    no_space = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                               whitespace_after=cst.SimpleWhitespace(""))
    args = []
    for param in params_of(function, drop_self=False):
        name = cst.Name(param.name)
        if param.kind == "positional":
            args.append(cst.Arg(name))
        elif param.kind == "vararg":
            args.append(cst.Arg(name, star="*"))
        elif param.kind == "keyword_only":
            args.append(cst.Arg(name, keyword=cst.Name(param.name), equal=no_space))
        else:
            args.append(cst.Arg(name, star="**"))
    return cst.Call(func=cst.Name(callee), args=args)
