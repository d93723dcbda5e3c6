"""Rewrite a user's source so that its target runs the accepted kernel, changing nothing else.

With libcst, two edits and no more: an import of the kernel module is added after the file's
leading imports, and the target's definition is replaced in place:
- a class keeps its name, decorators and docstring and becomes `class Target(ModelNew)`, so its
  constructor signature and state_dict keys are ModelNew's, which mirror the original's;
- a function keeps its name, decorators, signature and docstring, and its body calls a ModelNew
  instance created next to the import.
Every other statement, comment and blank line is reproduced byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from integration.errors import IntegrationError
from integration.signature import pass_through_call

KERNEL_CLASS = "ModelNew"

# Decorators that compile the decorated function: they cannot wrap a call to an nn.Module.
_COMPILING_DECORATORS = {"torch.jit.script", "torch.compile", "jit.script", "torch.jit.trace"}


@dataclass
class Rewrite:
    code: str
    kernel_name: str  # the name ModelNew is bound to in the rewritten module
    notes: list[str] = field(default_factory=list)


def integrated_source(source_text: str, target_name: str, target_kind: str, kernel_module: str) -> Rewrite:
    """The source with `target_name` backed by `kernel_module.ModelNew` (see the module docstring)."""
    try:
        module = cst.parse_module(source_text)
    except cst.ParserSyntaxError as exc:
        raise IntegrationError(f"cannot parse the source: {str(exc).splitlines()[0]}") from exc
    index = _target_index(module, target_name, target_kind)
    bound = _top_level_names(module)
    kernel_name = _free_name(KERNEL_CLASS, bound)
    notes: list[str] = []

    import_line = _import_statement(kernel_module, kernel_name, target_name)
    new_statements = [import_line]
    original = module.body[index]
    if target_kind == "class":
        replacement = _class_replacement(original, kernel_name, kernel_module, notes)
    else:
        instance = _free_name(f"_{target_name}_kernel", bound | {kernel_name})
        instance_line = cst.parse_statement(
            f"{instance} = {kernel_name}()  # akg-op: {target_name}() calls it\n")
        new_statements.append(instance_line.with_changes(leading_lines=[cst.EmptyLine()]))
        replacement = _function_replacement(original, instance, kernel_module, notes)

    body = list(module.body)
    body[index] = replacement
    insert_at = _after_leading_imports(module)
    if insert_at > index:
        raise IntegrationError(f"{target_name} is defined before the file's imports end; cannot add the import")
    body[insert_at:insert_at] = new_statements
    return Rewrite(code=module.with_changes(body=body).code, kernel_name=kernel_name, notes=notes)


def _target_index(module: cst.Module, name: str, kind: str) -> int:
    wanted = cst.ClassDef if kind == "class" else cst.FunctionDef
    matches = [i for i, s in enumerate(module.body) if isinstance(s, wanted) and s.name.value == name]
    if not matches:
        raise IntegrationError(f"{kind} {name!r} is no longer defined at the top level of the source")
    return matches[-1]  # the definition Python keeps when a name is defined twice


def _top_level_names(module: cst.Module) -> set[str]:
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)) \
                        and not isinstance(small.names, cst.ImportStar):
                    for alias in small.names:
                        bound = alias.asname.name if alias.asname else alias.name
                        names.add(cst.Module([]).code_for_node(bound).split(".")[0])
                elif isinstance(small, cst.Assign):
                    names.update(t.target.value for t in small.targets if isinstance(t.target, cst.Name))
                elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    names.add(small.target.value)
    return names


def _free_name(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted_2`, `wanted_3`... when the file already binds it (a second operator
    integrated into the same file brings a second ModelNew)."""
    if wanted not in taken:
        return wanted
    suffix = 2
    while f"{wanted}_{suffix}" in taken:
        suffix += 1
    return f"{wanted}_{suffix}"


def _import_statement(kernel_module: str, kernel_name: str, target_name: str) -> cst.SimpleStatementLine:
    alias = "" if kernel_name == KERNEL_CLASS else f" as {kernel_name}"
    return cst.parse_statement(
        f"from {kernel_module} import {KERNEL_CLASS}{alias}  # akg-op: Triton kernel for {target_name}\n"
    )


def _after_leading_imports(module: cst.Module) -> int:
    """Index just after the module docstring, `from __future__` and the imports at the top."""
    position = 0
    for i, stmt in enumerate(module.body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            break
        is_docstring = i == 0 and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) and isinstance(
            stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
        if is_docstring or all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            position = i + 1
        else:
            break
    return position


def _marker(text: str) -> cst.EmptyLine:
    return cst.EmptyLine(comment=cst.Comment(f"# akg-op: {text}"))


def _docstring_statement(node: cst.ClassDef | cst.FunctionDef) -> list[cst.BaseStatement]:
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
    if body and node.get_docstring() is not None:
        return [body[0]]
    return []


def _class_replacement(node: cst.ClassDef, kernel_name: str, kernel_module: str,
                       notes: list[str]) -> cst.ClassDef:
    dropped = [s.name.value for s in node.body.body
               if isinstance(s, cst.FunctionDef) and s.name.value not in ("__init__", "forward")]
    if dropped:
        notes.append(f"{node.name.value}: methods now provided by ModelNew or dropped: {', '.join(dropped)}")
    body = _docstring_statement(node) or [cst.SimpleStatementLine([cst.Pass()])]
    return node.with_changes(
        bases=[cst.Arg(cst.Name(kernel_name))],
        keywords=[],
        body=cst.IndentedBlock(body=body),
        leading_lines=[*node.leading_lines,
                       _marker(f"now runs {kernel_module}.ModelNew; the original is in the session's backup/")],
    )


def _function_replacement(node: cst.FunctionDef, instance: str, kernel_module: str,
                          notes: list[str]) -> cst.FunctionDef:
    decorators = []
    for decorator in node.decorators:
        expression = decorator.decorator
        if isinstance(expression, cst.Call):  # @torch.compile(mode=...) is named by its func
            expression = expression.func
        name = cst.Module([]).code_for_node(expression)
        if name in _COMPILING_DECORATORS:
            notes.append(f"{node.name.value}: dropped decorator @{name} (it cannot compile a call to ModelNew)")
        else:
            decorators.append(decorator)
    call = cst.SimpleStatementLine([cst.Return(pass_through_call(node, instance))])
    return node.with_changes(
        decorators=decorators,
        body=cst.IndentedBlock(body=[*_docstring_statement(node), call]),
        leading_lines=[*node.leading_lines,
                       _marker(f"now runs {kernel_module}.ModelNew; the original is in the session's backup/")],
    )
