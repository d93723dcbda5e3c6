"""A user's Python file, parsed with libcst, and what its top-level statements define and use.

`SourceFile.closure(name)` answers "which top-level statements does this definition need?":
the helpers, constants, imports and in-file base classes it reaches, transitively, found with
libcst's scope analysis so that a local variable never drags in a same-named global.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import GlobalScope, MetadataWrapper, ScopeProvider

from integration.errors import ExtractionError

# Bases that make a class an nn.Module without being defined in the file.
_TORCH_MODULE_PREFIXES = ("nn.", "torch.nn.")
_TORCH_MODULE_NAMES = {"Module", "nn.Module", "torch.nn.Module"}


def dotted_name(node: cst.BaseExpression) -> str | None:
    """`torch.nn.Module` for an Attribute chain of Names, None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def is_main_guard(stmt: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":` — script code that no extracted task should contain."""
    if not isinstance(stmt, cst.If) or not isinstance(stmt.test, cst.Comparison):
        return False
    parts = [stmt.test.left] + [target.comparator for target in stmt.test.comparisons]
    return any(isinstance(p, cst.Name) and p.value == "__name__" for p in parts)


class _NodeCollector(cst.CSTVisitor):
    """Records every node under one top-level statement, to map a node back to its statement."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.ids.append(id(node))
        return True


@dataclass
class Definition:
    """A top-level class or function that could be a target."""

    name: str
    kind: str  # "class" | "function"
    node: cst.ClassDef | cst.FunctionDef
    index: int  # position in module.body
    docstring: str = ""
    is_module: bool = False  # class that is (transitively) an nn.Module subclass


@dataclass
class SourceFile:
    path: Path
    text: str
    module: cst.Module
    owner: dict[int, int] = field(default_factory=dict)  # id(node) -> top-level statement index
    defines: dict[str, list[int]] = field(default_factory=dict)  # global name -> statement indices
    uses: dict[int, set[int]] = field(default_factory=dict)  # statement -> statements it needs
    used_names: dict[int, set[str]] = field(default_factory=dict)  # statement -> globals it reads
    star_imports: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, source_path: str | Path) -> "SourceFile":
        path = Path(os.path.abspath(source_path))
        if not path.exists():
            raise ExtractionError(f"source file not found: {path}")
        if not path.is_file():
            raise ExtractionError(f"source is not a regular file: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExtractionError(f"cannot read {path}: {exc}") from exc
        try:
            wrapper = MetadataWrapper(cst.parse_module(text))
        except cst.ParserSyntaxError as exc:
            raise ExtractionError(_syntax_error_message(path, text, exc)) from exc
        source = cls(path=path, text=text, module=wrapper.module)
        source._index(wrapper)
        return source

    # -- analysis -------------------------------------------------------------------------------

    def _index(self, wrapper: MetadataWrapper) -> None:
        for index, stmt in enumerate(self.module.body):
            collector = _NodeCollector()
            stmt.visit(collector)
            self.owner.update(dict.fromkeys(collector.ids, index))
            self.uses[index] = set()
            self.used_names[index] = set()
            if _is_star_import(stmt):
                self.star_imports.append(index)
        scopes = wrapper.resolve(ScopeProvider)
        global_scope = next(s for s in scopes.values() if isinstance(s, GlobalScope))
        for assignment in global_scope.assignments:
            index = self.owner.get(id(assignment.node))
            if index is not None and not is_main_guard(self.module.body[index]):
                self.defines.setdefault(assignment.name.split(".")[0], []).append(index)
        for scope in set(scopes.values()):
            for access in scope.accesses:
                user = self.owner.get(id(access.node))
                if user is None:
                    continue
                for referent in access.referents:
                    if referent.scope is not global_scope:
                        continue
                    defining = self.owner.get(id(getattr(referent, "node", None)))
                    if defining is not None and defining != user and not is_main_guard(
                        self.module.body[defining]
                    ):
                        self.uses[user].add(defining)
                        self.used_names[user].add(referent.name)

    def closure(self, index: int) -> list[int]:
        """The statement and every top-level statement it needs, in file order."""
        seen, todo = {index}, [index]
        while todo:
            for needed in self.uses[todo.pop()]:
                if needed not in seen:
                    seen.add(needed)
                    todo.append(needed)
        return sorted(seen | set(self.star_imports))

    # -- definitions ----------------------------------------------------------------------------

    def definitions(self) -> list[Definition]:
        """Top-level classes and functions, with whether each class is an nn.Module."""
        found: dict[str, Definition] = {}
        for index, stmt in enumerate(self.module.body):
            if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
                kind = "class" if isinstance(stmt, cst.ClassDef) else "function"
                # A later definition of the same name wins, as it does when Python runs the file.
                found[stmt.name.value] = Definition(
                    stmt.name.value, kind, stmt, index, docstring=stmt.get_docstring() or ""
                )
        for definition in found.values():
            if definition.kind == "class":
                definition.is_module = self._is_module_class(definition.node, found, set())
        return list(found.values())

    def _is_module_class(self, node: cst.ClassDef, found: dict[str, Definition], seen: set[str]) -> bool:
        for base in node.bases:
            name = dotted_name(base.value)
            if name is None or base.keyword is not None:
                continue
            if name in _TORCH_MODULE_NAMES or name.startswith(_TORCH_MODULE_PREFIXES):
                return True
            local = found.get(name)
            if local and local.kind == "class" and name not in seen:
                seen.add(name)
                if self._is_module_class(local.node, found, seen):
                    return True
        return False

    def top_level_names(self) -> set[str]:
        return set(self.defines)

    def code_of(self, index: int) -> str:
        """The statement's source exactly as written, with the comments above it but without the
        blank lines that separated it from the previous statement."""
        lines = self.module.code_for_node(self.module.body[index]).splitlines()
        while lines and not lines[0].strip():
            lines.pop(0)
        return "\n".join(lines)


def _is_star_import(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    return any(isinstance(s, cst.ImportFrom) and isinstance(s.names, cst.ImportStar) for s in stmt.body)


def _syntax_error_message(path: Path, text: str, exc: cst.ParserSyntaxError) -> str:
    """Python's own description of the error when it has one (only parsed, never run):
    "'(' was never closed" says more than the parser's "Syntax Error @ 4:1"."""
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError as python_error:
        return f"syntax error in {path} at line {python_error.lineno}: {python_error.msg}"
    return f"syntax error in {path} at line {exc.raw_line}: {str(exc).strip().splitlines()[0]}"
