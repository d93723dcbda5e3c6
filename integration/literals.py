"""Values of constructor arguments written in the source, computed without running any code.

`MyLayerNorm(512, eps=1e-5)`, `MyLayerNorm(HIDDEN)` with `HIDDEN = 512` at module level, or
`MyLayerNorm(dim)` inside `def __init__(self, dim=512)`: each gives literal values a KernelBench
task can pass through `get_init_inputs()`. Anything else (attributes, calls, variables set at run
time) is "unknown", and the confirm gate asks the user.
"""
from __future__ import annotations

import ast
import operator

import libcst as cst

UNKNOWN = object()

_BINARY = {
    cst.Add: operator.add,
    cst.Subtract: operator.sub,
    cst.Multiply: operator.mul,
    cst.Divide: operator.truediv,
    cst.FloorDivide: operator.floordiv,
}


def literal_value(node: cst.BaseExpression, names: dict[str, object]):
    """The value of a literal expression (numbers, strings, True/False/None, tuples, lists,
    + - * / // of those, and names found in `names`), or UNKNOWN."""
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
        try:
            return ast.literal_eval(cst.Module([]).code_for_node(node))
        except (ValueError, SyntaxError):
            return UNKNOWN
    if isinstance(node, cst.Name):
        builtins = {"True": True, "False": False, "None": None}
        if node.value in builtins:
            return builtins[node.value]
        return names.get(node.value, UNKNOWN)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        value = literal_value(node.expression, names)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.operator, cst.Minus) else value
        return UNKNOWN
    if isinstance(node, cst.BinaryOperation) and type(node.operator) in _BINARY:
        left, right = literal_value(node.left, names), literal_value(node.right, names)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if numbers:
            try:
                return _BINARY[type(node.operator)](left, right)
            except ZeroDivisionError:
                return UNKNOWN
        return UNKNOWN
    if isinstance(node, (cst.Tuple, cst.List)):
        items = []
        for element in node.elements:
            if not isinstance(element, cst.Element):
                return UNKNOWN
            value = literal_value(element.value, names)
            if value is UNKNOWN:
                return UNKNOWN
            items.append(value)
        return tuple(items) if isinstance(node, cst.Tuple) else items
    return UNKNOWN


def module_constants(module: cst.Module) -> dict[str, object]:
    """Top-level `NAME = literal` assignments, in file order (later ones see earlier ones)."""
    constants: dict[str, object] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target, value = small.targets[0].target, small.value
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                target, value = small.target, small.value
            else:
                continue
            if isinstance(target, cst.Name):
                evaluated = literal_value(value, constants)
                if evaluated is UNKNOWN:
                    constants.pop(target.value, None)
                else:
                    constants[target.value] = evaluated
    return constants


def parameter_defaults(function: cst.FunctionDef, constants: dict[str, object]) -> dict[str, object]:
    """Literal defaults of a function's parameters (`def __init__(self, dim=512)` → {dim: 512})."""
    defaults: dict[str, object] = {}
    params = function.params
    for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
        if param.default is not None:
            value = literal_value(param.default, constants)
            if value is not UNKNOWN:
                defaults[param.name.value] = value
    return defaults
