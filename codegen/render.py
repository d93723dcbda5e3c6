"""File assembly shared by every generated file: the header, only the imports and helpers the file
uses, the tunables block, the reference's module-level definitions and `ModelNew` (the
reference's own constructor, so its state_dict loads, with a generated forward).
"""
from __future__ import annotations

import ast
import re

from .ir import Unsupported

# (import line, what in the file's body uses it): an import nothing uses is left out.
IMPORTS = [
    ("import itertools", r"\bitertools\."),
    ("import math", r"\bmath\."),
    ("import os", r"\bos\."),
    ("", None),
    ("import torch", None),
    ("import torch.nn as nn", None),
    ("import torch.nn.functional as F", r"\bF\."),
    ("import triton", r"\btriton\.(?!language|jit)|@triton\.jit"),
    ("import triton.language as tl", r"\btl\."),
    ("from triton.tools.tensor_descriptor import TensorDescriptor", r"\bTensorDescriptor\b"),
]

# Launchers run on every forward call: host time spent there is time the GPU may sit idle, so
# they avoid triton.cdiv (a jit function, costly to call from Python).
CDIV = '''def cdiv(a, b):
    """Ceiling division in plain Python (triton.cdiv is slow to call from the host)."""
    return -(-a // b)'''


def assemble(docstring: str, sections: list[str], model_src: str, preamble: str = "") -> str:
    """One standalone file: docstring, imports, `sections` (tunables, helpers, kernels and
    launchers, in order), the reference's definitions and ModelNew. `cdiv` is added when used."""
    body = [s.strip("\n") for s in sections if s.strip()]
    if preamble.strip():
        body.insert(1 if body else 0, "# The reference's module-level definitions (sizes, helpers) the constructor may use.\n"
                    + preamble.strip("\n"))
    text = "\n".join(body) + "\n" + model_src
    if re.search(r"(?<![.\w])cdiv\(", text):
        body.insert(min(2, len(body)), CDIV)
    imports = [line for line, used in IMPORTS if used is None or re.search(used, text)]
    head = '"""' + docstring.strip("\n") + '\n"""\n' + "\n".join(imports).strip("\n")
    return "\n\n\n".join([head] + body + [model_src.strip("\n")]) + "\n"


def module_names(task_source: str) -> set[str]:
    """Names the task defines or imports at module level (they stay defined in the generated file)."""
    out = set()
    for stmt in ast.parse(task_source).body:
        for node in ast.walk(stmt) if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)) else [stmt]:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            out.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return out


def state_access(name: str) -> str:
    """How ModelNew reads the reference's parameter or buffer `name` (a state_dict key)."""
    parts = name.split(".")
    if all(p.isidentifier() for p in parts):
        return "self." + name
    return f"self.get_parameter({name!r}) if {name!r} in dict(self.named_parameters()) else self.get_buffer({name!r})"


def forward_signature(task_source: str) -> tuple[str, list[str]]:
    """(Model.forward's parameter list as source, the names of its parameters after self)."""
    model = _model_class(ast.parse(task_source))
    forward = next((n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)
    if forward is None:
        raise Unsupported("unsupported: Model without forward")
    names = [a.arg for a in forward.args.posonlyargs + forward.args.args][1:]
    return ast.unparse(forward.args), names


def _model_class(tree: ast.Module) -> ast.ClassDef:
    model = next((s for s in tree.body if isinstance(s, ast.ClassDef) and s.name == "Model"), None)
    if model is None:
        raise Unsupported("unsupported: task defines no Model class")
    return model


def _is_definition(stmt: ast.stmt) -> bool:
    """A function or class definition, or a constant: a name bound to an expression without calls."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return all(isinstance(t, ast.Name) for t in targets) and \
            not any(isinstance(node, (ast.Call, ast.Await, ast.Yield, ast.NamedExpr)) for node in ast.walk(stmt.value))
    return False


def reference_parts(task_source: str, forward_src: str) -> tuple[str, str]:
    """(module-level definitions and constants of the task minus its input functions, ModelNew's
    class source). The task's other top-level statements are left out: the delivered kernel must
    not run them when it is imported.

    ModelNew keeps the reference's constructor and other methods verbatim (same signature, same
    parameter and buffer names, so the reference's state_dict loads) and replaces forward."""
    tree = ast.parse(task_source)
    model = _model_class(tree)
    keep = []
    for stmt in tree.body:
        if stmt is model or isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue  # the header imports torch / nn / triton
        if isinstance(stmt, ast.FunctionDef) and stmt.name in ("get_inputs", "get_init_inputs"):
            continue
        if _is_definition(stmt):
            keep.append(stmt)  # anything else (prints, seeds, calls) would run on every import of the kernel
    standard = {"import torch", "import torch.nn as nn", "import math", "import torch.nn.functional as F"}
    extra_imports = [ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))
                     and ast.unparse(s) not in standard]
    model.name = "ModelNew"
    model.body = [s for s in model.body if not (isinstance(s, ast.FunctionDef) and s.name == "forward")]
    if not model.body:
        model.body = [ast.Pass()]
    src = ast.unparse(model)
    src = re.sub(r"super\(\s*Model\s*,\s*self\s*\)", "super()", src)
    src = src.rstrip() + "\n\n" + forward_src
    return "\n".join(extra_imports + [ast.unparse(s) for s in keep]), src
