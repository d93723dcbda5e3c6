"""Phase 2 from source: turn a class or function in a user's file into a KernelBench task.

The task holds the target's code and the top-level statements it needs (helpers, constants, the
imports it uses, in-file base classes) as written in the file, then:
- `class Model(Target)` for an nn.Module target: the target itself, so ModelNew must keep its
  constructor signature and state_dict keys, which is what lets integration swap it in;
- `class Model(torch.nn.Module)` whose forward calls the target, for a function target;
- `get_inputs()` / `get_init_inputs()` from --shapes/--dtype, the request's words, type hints,
  defaults and the target's use sites. What stays unknown is listed in `needs` for confirm_task.
"""
from __future__ import annotations

import re
from typing import Literal

import libcst as cst
from pydantic import BaseModel, Field

from integration.errors import ExtractionError
from integration.literals import module_constants, parameter_defaults
from integration.signature import (
    Param, find_method, params_of, pass_through_call, use_site_arguments, use_site_literals,
)
from integration.source import Definition, SourceFile
from integration.targets import find_target

RESERVED_NAMES = ("Model", "ModelNew", "get_inputs", "get_init_inputs")

DTYPES = {
    "fp32": "float32", "float32": "float32", "float": "float32",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp64": "float64", "float64": "float64", "double": "float64",
    "int32": "int32", "int64": "int64", "long": "int64", "bool": "bool",
}


class Need(BaseModel):
    """Something the extractor could not determine; the confirm gate asks the user for it."""

    kind: Literal["shapes", "init_args", "inputs"]
    question: str


class ExtractedTask(BaseModel):
    op_name: str
    source_path: str
    target_name: str
    target_kind: Literal["class", "function"]
    task_code: str
    needs: list[Need] = Field(default_factory=list)
    init_args: list | None = None  # constructor arguments (None: still unknown)
    input_shapes: list[list[int]] | None = None
    dtype: str = "float32"
    notes: list[str] = Field(default_factory=list)  # what the user should know (guesses, gaps)

    @property
    def complete(self) -> bool:
        return not self.needs


def op_name_for(target_name: str) -> str:
    """`MyLayerNorm` → `my_layer_norm`: the task's file and module name."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", target_name).lower()
    return re.sub(r"_+", "_", snake).strip("_") or "op"


def shapes_from_request(request: str) -> list[list[int]]:
    """Shapes written in the request as tuples: "input (32, 512)" → [[32, 512]]."""
    return [[int(n) for n in re.findall(r"\d+", group)]
            for group in re.findall(r"\(\s*(\d+(?:\s*[,x]\s*\d+)*)\s*,?\s*\)", request)]


def dtype_from_request(request: str) -> str | None:
    for word in re.findall(r"[a-z0-9]+", request.lower()):
        if word in DTYPES and word not in {"float", "half", "double", "long", "bool"}:
            return DTYPES[word]
    return None


def normalize_dtype(dtype: str) -> str:
    name = dtype.lower().removeprefix("torch.")
    if name not in DTYPES:
        raise ExtractionError(f"unknown dtype {dtype!r}; use one of fp32, fp16, bf16, fp64, int32, int64")
    return DTYPES[name]


def extract_task(
    source_path: str,
    request: str,
    *,
    target: str | None = None,
    shapes: list[tuple[int, ...]] | list[list[int]] | None = None,
    dtype: str | None = None,
    init_args: list | None = None,
) -> ExtractedTask:
    """Build the KernelBench task for the target in `source_path` (see the module docstring).

    Raises ExtractionError for a missing or unparsable file, and for a target that is missing,
    ambiguous, or not an nn.Module subclass or function.
    """
    source = SourceFile.load(source_path)
    definition = find_target(source, request, target)
    _refuse_reserved_names(source, definition)

    notes: list[str] = []
    needs: list[Need] = []
    if dtype is not None:
        dtype_name = normalize_dtype(dtype)
    else:
        dtype_name = dtype_from_request(request) or "float32"
    if shapes is None:
        shapes = shapes_from_request(request) or None
        if shapes:
            notes.append(f"input shapes taken from the request: {shapes}")
    shape_list = [list(s) for s in shapes] if shapes else None

    if definition.kind == "class":
        init_params, input_params = _class_signature(source, definition)
        init_args = _constructor_args(source, definition, init_params, init_args, needs, notes)
    else:
        input_params = params_of(definition.node, drop_self=False)
        init_args = []
    inputs = _input_plan(source, definition, input_params, shape_list, needs)

    task_code = _render(source, definition, init_args, inputs, shape_list, dtype_name, notes)
    return ExtractedTask(
        op_name=op_name_for(definition.name),
        source_path=str(source.path),
        target_name=definition.name,
        target_kind=definition.kind,
        task_code=task_code,
        needs=needs,
        init_args=init_args,
        input_shapes=shape_list,
        dtype=dtype_name,
        notes=notes,
    )


# -- what the target takes ---------------------------------------------------------------------


def _refuse_reserved_names(source: SourceFile, definition: Definition) -> None:
    needed = source.closure(definition.index)
    for name in RESERVED_NAMES:
        clash = [i for i in source.defines.get(name, []) if i in needed and i != definition.index]
        if clash:
            raise ExtractionError(
                f"{definition.name} depends on {name!r}, a name the KernelBench task defines itself; "
                f"rename it in {source.path.name}"
            )


def _class_signature(source: SourceFile, definition: Definition) -> tuple[list[Param] | None, ...]:
    """Parameters of __init__ and forward (None where torch, not the file, defines them)."""
    init = find_method(source, definition, "__init__")
    forward = find_method(source, definition, "forward")
    return (
        params_of(init, drop_self=True) if init else None,
        params_of(forward, drop_self=True) if forward else None,
    )


def _constructor_args(source, definition, init_params, given, needs, notes) -> list | None:
    if given is not None:
        return list(given)
    init = find_method(source, definition, "__init__")
    if init_params is None:  # constructor inherited from torch: only use sites can tell
        init_params = [Param(f"arg{i}", "positional", False, None) for i in range(8)]
    defaults = {}
    if init is not None:
        defaults = parameter_defaults(init, module_constants(source.module))
    sites = use_site_arguments(source, definition, init_params, defaults)
    if sites:
        if len({repr(s) for s in sites}) > 1:
            notes.append(f"{definition.name} is built with different arguments in the file; "
                         f"using the first: {sites[0]}")
        else:
            notes.append(f"constructor arguments {sites[0]} come from where "
                         f"{source.path.name} builds {definition.name}")
        return sites[0]
    required = [p.name for p in init_params if p.kind == "positional" and not p.has_default]
    if init is not None and not required:
        return []
    signature = (", ".join(p.name for p in init_params if p.kind == "positional")
                 if init is not None else "its constructor comes from torch")
    needs.append(Need(kind="init_args", question=f"constructor arguments for {definition.name}({signature})"))
    return None


def _input_plan(source, definition, input_params, shapes, needs) -> list[tuple[str, object]]:
    """One entry per input forward needs: ("tensor", shape or None) or ("value", literal or None)."""
    plan: list[tuple[str, object]] = []
    if input_params is None:  # forward inherited from torch: the shapes say how many inputs
        if shapes:
            plan.extend(("tensor", s) for s in shapes)
        else:
            needs.append(Need(kind="shapes", question=f"input shapes for {definition.name}.forward"))
        return plan
    required = [p for p in input_params if p.kind == "positional" and not p.has_default]
    scalar_values = _scalar_values_from_use_sites(source, definition, input_params)
    tensors = [p for p in required if not p.is_scalar and p.name not in scalar_values]
    if shapes is not None and len(shapes) != len(tensors):
        raise ExtractionError(
            f"{definition.name} takes {len(tensors)} tensor input(s) "
            f"({', '.join(p.name for p in tensors)}) but {len(shapes)} shape(s) were given"
        )
    shape_iter = iter(shapes or [])
    for param in required:
        if param in tensors:
            plan.append(("tensor", next(shape_iter, None)))
        elif param.name in scalar_values:
            plan.append(("value", scalar_values[param.name]))
        else:
            plan.append(("value", None))
            needs.append(Need(kind="inputs",
                              question=f"a value for {definition.name}'s {param.name} ({param.hint})"))
    if tensors and shapes is None:
        needs.append(Need(
            kind="shapes",
            question=f"input shapes for {definition.name}({', '.join(p.name for p in tensors)})",
        ))
    return plan


def _scalar_values_from_use_sites(source, definition, params) -> dict[str, object]:
    """Scalars (int/float/bool/str) a function target is called with in the file, for its
    parameters without a default: `rms_norm(h, self.weight, 1e-6)` → {eps: 1e-6}."""
    if definition.kind != "function":
        return {}
    required = {p.name for p in params if not p.has_default}
    return {name: value for name, value in use_site_literals(source, definition, params).items()
            if name in required and isinstance(value, (int, float, bool, str))}


# -- rendering ---------------------------------------------------------------------------------


def _render(source, definition, init_args, inputs, shapes, dtype, notes) -> str:
    needed = source.closure(definition.index)
    used_names = set().union(*(source.used_names[i] for i in needed))
    blocks: list[tuple[str, str]] = []  # (import | simple | compound, code)
    binds_torch = False
    for index in needed:
        stmt = source.module.body[index]
        code, imports_torch = _trimmed_statement(source, index, used_names, notes)
        binds_torch = binds_torch or imports_torch
        blocks.append((_block_kind(stmt), code))
    future = [b for b in blocks if b[1].startswith("from __future__")]
    rest = [b for b in blocks if b not in future]
    if not binds_torch:
        rest.insert(0, ("import", "import torch"))

    size_names = _size_constants(inputs, source.top_level_names())
    kind = "nn.Module" if definition.kind == "class" else "function"
    header = (
        f'"""{definition.name} ({kind}) extracted from {source.path.name}: '
        'KernelBench task written by akg-op.\n\n'
        + (f"Model is {definition.name} itself; ModelNew must keep its constructor signature and\n"
           f"state_dict keys, so that it can replace {definition.name} in {source.path.name}.\n"
           if definition.kind == "class" else
           f"Model.forward calls {definition.name}; ModelNew.forward must take the same arguments.\n")
        + '"""'
    )
    top = "\n".join([header] + [code for _, code in future])
    parts = [top + "\n" + _join_blocks(rest)]
    if size_names:
        parts.append("\n".join(f"{name} = {value}" for value, name in size_names.items()))
    parts.append(_model_class(source, definition, dtype))
    parts.append(_get_inputs(inputs, size_names, dtype))
    parts.append(_get_init_inputs(init_args, inputs, size_names))
    return "\n\n\n".join(p for p in parts if p) + "\n"


def _block_kind(stmt: cst.CSTNode) -> str:
    if isinstance(stmt, cst.SimpleStatementLine):
        if all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            return "import"
        return "simple"
    return "compound"


def _join_blocks(blocks: list[tuple[str, str]]) -> str:
    """PEP 8 spacing: imports together, a blank line before constants and before a commented
    statement, two blank lines around classes and functions."""
    out, previous = "", None
    for kind, code in blocks:
        if previous is None:
            out = code
        elif kind == "compound" or previous == "compound":
            out += "\n\n\n" + code
        elif kind == previous and not code.startswith("#"):
            out += "\n" + code
        else:
            out += "\n\n" + code
        previous = kind
    return out


def _trimmed_statement(source: SourceFile, index: int, used: set[str], notes: list[str]) -> tuple[str, bool]:
    """The statement's code; an import keeps only the names the task uses (`import os, sys` →
    `import os`). Also says whether it binds the name `torch`."""
    stmt = source.module.body[index]
    if not isinstance(stmt, cst.SimpleStatementLine) or not all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    ):
        return source.code_of(index), False
    new_body, binds_torch = [], False
    for small in stmt.body:
        if isinstance(small, cst.ImportFrom) and small.relative:
            notes.append(f"relative import kept as written: the task is not self-contained "
                         f"({cst.Module([]).code_for_node(small)})")
        if isinstance(small.names, cst.ImportStar):
            new_body.append(small)
            continue
        kept = [a for a in small.names if _bound_name(a, small) in used]
        if not kept:
            continue
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        changes = {"names": kept}
        if isinstance(small, cst.ImportFrom) and len(kept) == 1:
            changes.update(lpar=None, rpar=None)
        new_body.append(small.with_changes(**changes))
        binds_torch = binds_torch or any(
            isinstance(small, cst.Import) and a.asname is None
            and _bound_name(a, small).split(".")[0] == "torch"
            for a in kept
        )
    for i, small in enumerate(new_body[:-1]):
        new_body[i] = small.with_changes(semicolon=cst.Semicolon(whitespace_after=cst.SimpleWhitespace(" ")))
    if new_body:
        new_body[-1] = new_body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
    trimmed = stmt.with_changes(body=new_body)
    lines = source.module.code_for_node(trimmed).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines), binds_torch


def _bound_name(alias: cst.ImportAlias, statement: cst.Import | cst.ImportFrom) -> str:
    if alias.asname is not None:
        return alias.asname.name.value
    return cst.Module([]).code_for_node(alias.name)


def _size_constants(inputs, taken: set[str]) -> dict[int, str]:
    """One module-level constant per distinct size (value → name), so a harness that shrinks
    sizes for the Triton interpreter shrinks equal dimensions together."""
    shapes = [spec for kind, spec in inputs if kind == "tensor" and spec]
    values: list[int] = []
    for shape in shapes:
        values.extend(v for v in shape if v not in values)
    if len(shapes) == 1 and len(shapes[0]) == 2 and len(values) == 2:
        names = ["BATCH", "DIM"]
    else:
        names = [f"D{i}" for i in range(len(values))]
    names = [n if n not in taken else f"SIZE_{n}" for n in names]
    return dict(zip(values, names))


def _model_class(source: SourceFile, definition: Definition, dtype: str) -> str:
    if definition.kind == "class":
        to_dtype = ""
        if dtype in ("float16", "bfloat16", "float64"):
            to_dtype = (
                "\n\n    def __init__(self, *args, **kwargs):\n"
                "        super().__init__(*args, **kwargs)\n"
                f"        self.to(torch.{dtype})  # parameters follow the inputs' dtype\n"
            ).rstrip("\n")
        if definition.name == "Model":
            return ""  # the target is already called Model
        return (
            f"class Model({definition.name}):\n"
            f'    """{definition.name} unchanged: the reference ModelNew must match."""' + to_dtype
        )
    function = definition.node
    self_param = cst.Param(cst.Name("self"))
    params = function.params
    if params.posonly_params:
        params = params.with_changes(posonly_params=[self_param, *params.posonly_params])
    else:
        params = params.with_changes(params=[self_param, *params.params])
    forward = cst.Module([]).code_for_node(
        cst.FunctionDef(
            name=cst.Name("forward"),
            params=params,
            body=cst.IndentedBlock([cst.SimpleStatementLine(
                [cst.Return(pass_through_call(function, definition.name))])]),
            returns=function.returns,
        )
    )
    forward = "\n".join("    " + line if line else line for line in forward.strip().splitlines())
    return (
        "class Model(torch.nn.Module):\n"
        f'    """Calls {definition.name} from {source.path.name}: the reference ModelNew must match."""\n\n'
        f"{forward}"
    )


def _get_inputs(inputs, size_names: dict[int, str], dtype: str) -> str:
    items = []
    missing = False
    for kind, spec in inputs:
        if kind == "tensor":
            if spec is None:
                missing = True
                continue
            dims = ", ".join(size_names[v] for v in spec)
            items.append(_tensor_expr(dims, dtype))
        elif spec is None:
            missing = True
        else:
            items.append(repr(spec))
    if missing:
        return (
            "def get_inputs():\n"
            '    raise NotImplementedError("input shapes/values are not known yet: give them with --shapes")'
        )
    return "def get_inputs():\n" f"    return [{', '.join(items)}]"


def _tensor_expr(dims: str, dtype: str) -> str:
    if dtype == "bool":
        return f"torch.randint(0, 2, ({dims},)).bool()"
    if dtype.startswith("int"):
        return f"torch.randint(0, 100, ({dims},), dtype=torch.{dtype})"
    return f"torch.randn({dims}, dtype=torch.{dtype})"


def _get_init_inputs(init_args, inputs, size_names: dict[int, str]) -> str:
    if init_args is None:
        return (
            "def get_init_inputs():\n"
            '    raise NotImplementedError("constructor arguments are not known yet")'
        )
    # An int argument equal to an input's last dimension (a norm's size, a linear's in_features)
    # refers to that dimension's constant, so shrinking the inputs keeps the two consistent.
    last_dims = {spec[-1] for kind, spec in inputs if kind == "tensor" and spec}
    rendered = [
        size_names[a] if type(a) is int and a in last_dims and a in size_names else repr(a)
        for a in init_args
    ]
    return "def get_init_inputs():\n" f"    return [{', '.join(rendered)}]"
