"""Checks on KernelBench task files that need no execution (the CLI runs them before a session
starts, so a bad --task fails fast with one line)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from nodes.errors import UserError

REQUIRED = ("Model", "get_inputs", "get_init_inputs")


def read_task_file(path: str) -> str:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"task file {path} does not exist (or is not a file): check the path given to --task")
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read task file {path}: {exc.strerror or exc}; check its permissions")


def check_task_source(source: str, name: str) -> None:
    """Raise UserError when the source is not a KernelBench task (syntax, missing definitions)."""
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        raise UserError(f"{name} has a syntax error at line {exc.lineno}: {exc.msg}; fix it and retry")
    defined = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    missing = [n for n in REQUIRED if n not in defined]
    if missing:
        raise UserError(
            f"{name} is not a KernelBench task: it does not define {', '.join(missing)} "
            "(a task defines class Model(nn.Module), get_inputs() and get_init_inputs())"
        )


def op_name_from(text: str) -> str:
    """A safe file/identifier stem: 'My LayerNorm.py' → 'my_layernorm'."""
    stem = re.sub(r"[^0-9a-zA-Z_]+", "_", Path(text).stem).strip("_").lower()
    return stem or "op"
