"""Natural-language requests → KernelBench tasks, for the operators we know without an LLM.

A request such as "Generate a relu kernel, input (128, 4096), fp32, on H100" is parsed into an
`OpRequest`; `task_source()` renders it as a KernelBench task file. Sizes are module-level integer
constants so the harness can shrink them when it verifies in the Triton interpreter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodes.errors import UserError
from nodes.request_words import check_composite, read_meaning

# op name → (aliases, arity, kind). kind: unary | binary | rowwise | norm | reduce | matmul
OPS: dict[str, tuple[tuple[str, ...], str]] = {
    "log_softmax": (("log_softmax", "log softmax", "logsoftmax", "log-softmax"), "rowwise"),
    "softmax": (("softmax",), "rowwise"),
    "layernorm": (("layernorm", "layer norm", "layer_norm", "layer-norm"), "norm"),
    "rmsnorm": (("rmsnorm", "rms norm", "rms_norm", "rms-norm"), "norm"),
    "leaky_relu": (("leaky_relu", "leaky relu", "leakyrelu", "leaky-relu"), "unary"),
    "gelu": (("gelu",), "unary"),
    "silu": (("silu", "swish"), "unary"),
    "sigmoid": (("sigmoid",), "unary"),
    "tanh": (("tanh",), "unary"),
    "relu": (("relu",), "unary"),
    "matmul": (("matmul", "gemm", "matrix multiplication", "matrix multiply", "mm"), "matmul"),
    "add": (("add", "addition", "sum of two", "elementwise sum"), "binary"),
    "mul": (("mul", "multiply", "multiplication", "product of two", "elementwise product"), "binary"),
    "sum": (("sum", "reduce_sum", "reduce sum"), "reduce"),
    "mean": (("mean", "average", "reduce_mean"), "reduce"),
    "max": (("max", "maximum", "amax", "reduce_max"), "reduce"),
}

UNARY_EXPR = {
    "relu": "torch.relu({x})",
    "gelu": "torch.nn.functional.gelu({x})",
    "silu": "torch.nn.functional.silu({x})",
    "sigmoid": "torch.sigmoid({x})",
    "tanh": "torch.tanh({x})",
    "leaky_relu": "torch.nn.functional.leaky_relu({x}, negative_slope=0.01)",
}

DTYPES = {
    "fp32": "float32", "float32": "float32", "float": "float32",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}
ARCHES = {"a100": "a100", "h100": "h100", "h200": "h200", "910b": "ascend910b4", "ascend": "ascend910b4"}

SHAPE_PAREN = re.compile(r"[\(\[]\s*([^\)\]]*?)\s*[\)\]]")
SHAPE_X = re.compile(r"(?<![\w.])(\d+(?:\s*[x×]\s*\d+)+)(?![\w.])")
DIM_RE = re.compile(r"\b(?:dim(?:ension)?|axis)\s*(?:=|:)?\s*(-?\d+)")


@dataclass
class OpRequest:
    op: str
    kind: str
    shapes: list[tuple[int, ...]]
    dtype: str = "float32"
    dim: int = -1
    arch: str | None = None
    understood: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)  # composite: ops in the order they apply
    negative_slope: float | None = None  # leaky_relu, when the request gives one
    approximate: str | None = None  # gelu: "tanh" when asked


def unary_expr(req: OpRequest, op: str, x: str = "x") -> str:
    """The reference expression of one activation, with the request's modifiers."""
    if op == "leaky_relu" and req.negative_slope is not None:
        return f"torch.nn.functional.leaky_relu({x}, negative_slope={req.negative_slope!r})"
    if op == "gelu" and req.approximate:
        return f"torch.nn.functional.gelu({x}, approximate={req.approximate!r})"
    return UNARY_EXPR[op].format(x=x)


def find_arch(text: str) -> str | None:
    lowered = text.lower()
    return next((v for k, v in ARCHES.items() if re.search(rf"\b{k}\b", lowered)), None)


def _parse_shape(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in re.split(r"[,x×]", text)]
    if not parts or any(not re.fullmatch(r"\d+", p) for p in parts) or any(int(p) <= 0 for p in parts):
        raise UserError(
            f"malformed shape '{text}': write it as (128, 4096) or 128x4096, with positive integers"
        )
    return tuple(int(p) for p in parts)


def parse_shapes_text(text: str) -> list[tuple[int, ...]]:
    """Shapes given on their own ('(8, 512)', '8x512;4x4', '8, 512'); UserError when there are none."""
    shapes = find_shapes(text if "(" in text or "[" in text or "x" in text else f"({text})")
    if not shapes:
        raise UserError(f"malformed shapes '{text}': write e.g. '(8, 512)' or '8x512'")
    return shapes


def find_shapes(text: str) -> list[tuple[int, ...]]:
    shapes = []
    for m in SHAPE_PAREN.finditer(text):
        inner = m.group(1)
        if re.search(r"\d", inner):  # "(fp32)" or "(e.g. ...)" is prose, not a shape
            shapes.append(_parse_shape(inner))
    if not shapes:
        shapes = [_parse_shape(m.group(1)) for m in SHAPE_X.finditer(text)]
    return shapes


def parse_request(request: str, *, shapes: list[list[int]] | None = None,
                  dtype: str | None = None) -> OpRequest:
    """Parse a request; raise UserError naming what was understood and what to add."""
    text = request.lower()
    understood: list[str] = []
    meaning = read_meaning(text, OPS)
    stages = meaning.stages
    op = stages[0] if len(stages) == 1 and stages[0] in OPS else ("_".join(stages) if stages else None)
    if op:
        understood.append(f"op {' then '.join(stages)}" if len(stages) > 1 else f"op {op}")
    understood += meaning.notes
    found = [tuple(s) for s in shapes] if shapes else find_shapes(text)
    if found:
        understood.append("shape " + " and ".join(str(s) for s in found))
    named = list(dict.fromkeys(DTYPES[w] for w in re.findall(r"[a-z0-9]+", text) if w in DTYPES))
    if not dtype and len(named) > 1:
        raise UserError(f"the request names several dtypes ({', '.join(named)}): keep one, or pass --dtype")
    dtype_word = dtype or next((w for w in re.findall(r"[a-z0-9]+", text) if w in DTYPES), None)
    if dtype_word and dtype_word.lower() not in DTYPES:
        raise UserError(f"unknown dtype '{dtype_word}': use fp32, fp16 or bf16")
    resolved_dtype = DTYPES[dtype_word.lower()] if dtype_word else "float32"
    understood.append(f"dtype {resolved_dtype}")
    arch = find_arch(text)
    if arch:
        understood.append(f"arch {arch}")
    said = ", ".join(understood)
    if op is None:
        known = ", ".join(sorted(OPS))
        raise UserError(
            f"no known operator in the request (understood: {said}); name one of {known}, "
            "or pass --task FILE (or configure an LLM with --llm openai)"
        )
    if not found:
        raise UserError(f"no input shape in the request (understood: {said}); add one such as (128, 4096)")
    composite = op not in OPS
    if composite:
        check_composite(stages, OPS)
    kind = "composite" if composite else OPS[op][1]
    dim_match = DIM_RE.search(text)
    dim = int(dim_match.group(1)) if dim_match else -1
    if composite:
        _check_arity(op, "matmul" if stages[0] == "matmul" else "unary", found, said)
    else:
        _check_arity(op, kind, found, said)
    rank = len(found[0])
    rowwise = kind in ("rowwise", "reduce") or any(OPS.get(s, ((), ""))[1] == "rowwise" for s in stages)
    if rowwise and not -rank <= dim < rank:
        raise UserError(f"dim {dim} is out of range for shape {found[0]} (understood: {said})")
    return OpRequest(op=op, kind=kind, shapes=found, dtype=resolved_dtype, dim=dim, arch=arch,
                     understood=understood, stages=stages, negative_slope=meaning.negative_slope,
                     approximate=meaning.approximate)


def _check_arity(op: str, kind: str, shapes: list[tuple[int, ...]], said: str) -> None:
    if kind == "matmul":
        if len(shapes) == 1 and len(shapes[0]) == 3:
            return  # M x K x N
        if len(shapes) != 2 or len(shapes[0]) != 2 or len(shapes[1]) != 2 or shapes[0][1] != shapes[1][0]:
            raise UserError(
                f"matmul needs two 2-D shapes with matching inner size, e.g. (1024, 512) and (512, 256) "
                f"(understood: {said})"
            )
    elif kind == "binary":
        if len(shapes) > 2:
            raise UserError(f"{op} takes one or two input shapes (understood: {said})")
    elif len(shapes) != 1:
        raise UserError(f"{op} takes one input shape (understood: {said})")


def _composite(req: OpRequest, tensor, consts: list, dtype: str) -> tuple[list[str], str, str]:
    """Inputs, signature and body of a chain such as matmul → bias → gelu, stage by stage."""
    args, inputs, lines = ["x"], [], []
    if req.stages[0] == "matmul":
        a_shape, b_shape = ((req.shapes[0][:2], req.shapes[0][1:]) if len(req.shapes) == 1 else req.shapes)
        consts.extend([("M", a_shape[0]), ("K", a_shape[1]), ("N", b_shape[1])])
        inputs += [f"torch.randn(M, K, dtype={dtype})", f"torch.randn(K, N, dtype={dtype})"]
        args.append("w")
        out_last = "N"
    else:
        inputs.append(tensor(req.shapes[0]))
        out_last = _size_names(req.shapes[0])[-1]
    for stage in req.stages:
        if stage == "matmul":
            lines.append("y = torch.matmul(x, w)")
        elif stage == "bias":
            args.append("bias")
            inputs.append(f"torch.randn({out_last}, dtype={dtype})")
            lines.append(f"y = {'y' if lines else 'x'} + bias")
        elif OPS[stage][1] == "rowwise":
            fn = "torch.softmax" if stage == "softmax" else "torch.log_softmax"
            lines.append(f"y = {fn}({'y' if lines else 'x'}, dim={req.dim})")
        else:
            lines.append(f"y = {unary_expr(req, stage, 'y' if lines else 'x')}")
    body = "\n        ".join(lines + ["return y"])
    return inputs, ", ".join(args), body


def _size_names(shape: tuple[int, ...], prefix: str = "") -> list[str]:
    if len(shape) == 2 and not prefix:
        return ["BATCH", "DIM"]
    return [f"{prefix}D{i}" for i in range(len(shape))]


def task_source(req: OpRequest) -> str:
    """The KernelBench task file for a parsed request."""
    consts: list[tuple[str, int]] = []
    init_args = ""
    init_body = "        super().__init__()\n"
    dtype = f"torch.{req.dtype}"

    def tensor(shape: tuple[int, ...], prefix: str = "") -> str:
        names = _size_names(shape, prefix)
        consts.extend(zip(names, shape))
        return f"torch.randn({', '.join(names)}, dtype={dtype})"

    if req.kind == "matmul":
        if len(req.shapes) == 1:
            m, k, n = req.shapes[0]
            a_shape, b_shape = (m, k), (k, n)
        else:
            a_shape, b_shape = req.shapes
        consts.extend([("M", a_shape[0]), ("K", a_shape[1]), ("N", b_shape[1])])
        inputs = [f"torch.randn(M, K, dtype={dtype})", f"torch.randn(K, N, dtype={dtype})"]
        signature, body = "a, b", "return torch.matmul(a, b)"
    elif req.kind == "binary":
        first = tensor(req.shapes[0])
        second = tensor(req.shapes[1], "B_") if len(req.shapes) == 2 else first
        inputs = [first, second]
        symbol = "+" if req.op == "add" else "*"
        signature, body = "a, b", f"return a {symbol} b"
    elif req.kind == "unary":
        inputs = [tensor(req.shapes[0])]
        signature, body = "x", f"return {unary_expr(req, req.op)}"
    elif req.kind == "composite":
        inputs, signature, body = _composite(req, tensor, consts, dtype)
    elif req.kind == "rowwise":
        inputs = [tensor(req.shapes[0])]
        fn = "torch.softmax" if req.op == "softmax" else "torch.log_softmax"
        signature, body = "x", f"return {fn}(x, dim={req.dim})"
    elif req.kind == "reduce":
        inputs = [tensor(req.shapes[0])]
        call = f"torch.amax(x, dim={req.dim})" if req.op == "max" else f"torch.{req.op}(x, dim={req.dim})"
        signature, body = "x", f"return {call}"
    else:  # norm over the last dimension, with a learnable weight (and bias for layernorm)
        inputs = [tensor(req.shapes[0])]
        last = _size_names(req.shapes[0])[-1]
        init_args = "normalized_size: int, eps: float = 1e-5"
        if req.op == "layernorm":
            init_body = ("        super().__init__()\n"
                         "        self.norm = nn.LayerNorm(normalized_size, eps=eps)\n")
            body = "return self.norm(x)"
        else:
            init_body = ("        super().__init__()\n"
                         "        self.eps = eps\n"
                         "        self.weight = nn.Parameter(torch.ones(normalized_size))\n")
            body = ("variance = x.float().pow(2).mean(dim=-1, keepdim=True)\n"
                    "        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight")
        signature = "x"
        init_inputs = f"[{last}]"
    if req.kind != "norm":
        init_inputs = "[]"
    if req.kind == "norm" and req.dtype != "float32":
        # Parameters follow the input dtype, as a model in half precision would have them.
        init_body += f"        self.to({dtype})\n"

    const_lines = "\n".join(f"{name} = {value}" for name, value in dict(consts).items())
    shape_text = " and ".join(str(s) for s in req.shapes)
    init_sig = f"self, {init_args}" if init_args else "self"
    return (
        f'"""{req.op} on {shape_text} {req.dtype} (KernelBench task written by akg-op)."""\n'
        "import torch\n"
        "import torch.nn as nn\n\n"
        f"{const_lines}\n\n\n"
        "class Model(nn.Module):\n"
        f"    def __init__({init_sig}):\n"
        f"{init_body}\n"
        f"    def forward(self, {signature}):\n"
        f"        {body}\n\n\n"
        "def get_inputs():\n"
        f"    return [{', '.join(inputs)}]\n\n\n"
        "def get_init_inputs():\n"
        f"    return {init_inputs}\n"
    )
