"""A region as a KernelBench task: `Model.forward` runs exactly the region's ATen ops, at the
shapes and dtypes seen in the model. Sizes are module-level constants (one per distinct size) so
the harness can shrink them to verify in the Triton interpreter; view shapes are written in terms
of the inputs' shapes so they shrink with them."""
from __future__ import annotations

import math

import torch

from fusion.capture import Node, Ref
from fusion.ops import short_name
from fusion.regions import Region

READABLE = {  # ATen op → the torch call it reads as (same semantics, same argument order)
    "aten.add.Tensor": "torch.add", "aten.mul.Tensor": "torch.mul", "aten.sub.Tensor": "torch.sub",
    "aten.div.Tensor": "torch.div", "aten.pow.Tensor_Scalar": "torch.pow", "aten.rsqrt.default": "torch.rsqrt",
    "aten.sqrt.default": "torch.sqrt", "aten.neg.default": "torch.neg", "aten.exp.default": "torch.exp",
    "aten.tanh.default": "torch.tanh", "aten.sigmoid.default": "torch.sigmoid", "aten.cos.default": "torch.cos",
    "aten.sin.default": "torch.sin", "aten.silu.default": "torch.nn.functional.silu",
    "aten.relu.default": "torch.relu", "aten.cat.default": "torch.cat",
}
SHAPE_OPS = {"view", "_unsafe_view", "reshape", "expand"}


def _literal(value) -> str:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return f"float('{value}')"
        return repr(value)
    if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
        return str(value) if str(value).startswith("torch.") else f"torch.{value}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


class _Writer:
    def __init__(self, nodes: list[Node], region: Region, input_names: list[str]):
        self.nodes = nodes
        self.names: dict[tuple[int, int], str] = {(r.node, r.index): n for r, n in zip(region.inputs, input_names)}
        self.shapes: dict[str, list[int]] = {n: nodes[r.node].shapes[r.index] for r, n in zip(region.inputs, input_names)}

    def name_of(self, ref: Ref) -> str:
        return self.names[(ref.node, ref.index)]

    def arg(self, value, shape_like: str | None = None) -> str:
        if isinstance(value, Ref):
            return self.name_of(value)
        if isinstance(value, list) and any(isinstance(v, Ref) for v in value):
            return "[" + ", ".join(self.arg(v) for v in value) + "]"
        return _literal(value)

    def shape_expr(self, shape: list[int], source: str) -> str:
        """A target shape in terms of known tensors' shapes, so it follows them when shrunk."""
        for name, known in self.shapes.items():
            if list(known) == list(shape):
                return f"{name}.shape"
        parts = []
        for size in shape:
            if size in (-1, 1):
                parts.append(str(size))
                continue
            dims = [(n, d) for n, s in [(source, self.shapes.get(source, []))] + list(self.shapes.items())
                    for d, v in enumerate(s) if v == size]
            if dims:
                parts.append(f"{dims[0][0]}.shape[{dims[0][1]}]")
                continue
            # Flattened leading dims (a linear layer's (B*S, K) view): a product of consecutive dims.
            known = self.shapes.get(source, [])
            span = next(((i, j) for i in range(len(known)) for j in range(i + 2, len(known) + 1)
                         if math.prod(known[i:j]) == size), None)
            parts.append(" * ".join(f"{source}.shape[{k}]" for k in range(*span)) if span else str(size))
        return "[" + ", ".join(parts) + "]"

    def statement(self, node: Node, index: int) -> str:
        op = short_name(node.op)
        args = list(node.args)
        kwargs = {k: v for k, v in node.kwargs.items() if k not in ("device", "pin_memory")
                  and not (k == "layout" and v == torch.strided)}
        first = self.arg(args[0]) if args else ""
        if op in SHAPE_OPS and len(args) >= 2 and isinstance(args[1], (list, tuple)):
            rendered = [first, self.shape_expr(list(args[1]), first)] + [self.arg(a) for a in args[2:]]
        elif op == "slice" and len(args) >= 4 and isinstance(args[0], Ref):
            shape = self.shapes.get(first, [])
            dim = args[1] if len(args) > 1 else 0
            size = shape[dim] if shape and -len(shape) <= dim < len(shape) else None
            rendered = [first, repr(dim)]
            for bound in args[2:4]:
                if size is not None and bound == size // 2 and size > 1:
                    rendered.append(f"{first}.shape[{dim}] // 2")
                elif size is not None and isinstance(bound, int) and bound >= size:
                    rendered.append(f"{first}.shape[{dim}]")
                else:
                    rendered.append(self.arg(bound))
            rendered += [self.arg(a) for a in args[4:]]
        else:
            rendered = [self.arg(a) for a in args]
        rendered += [f"{k}={self.arg(v)}" for k, v in kwargs.items()]
        func = READABLE.get(node.op, "torch.ops." + node.op)
        if node.op == "aten._to_copy.default" and set(kwargs) == {"dtype"}:
            func, rendered = f"{first}.to", [self.arg(kwargs["dtype"])]
        elif node.op in ("aten.mean.dim", "aten.sum.dim_IntList", "aten.amax.default") and not kwargs:
            func = {"aten.mean.dim": "torch.mean", "aten.sum.dim_IntList": "torch.sum",
                    "aten.amax.default": "torch.amax"}[node.op]
        outputs = [f"t{index}" if len(node.shapes) == 1 else f"t{index}_{k}" for k in range(len(node.shapes))]
        for k, name in enumerate(outputs):
            self.names[(node.id, k)] = name
            self.shapes[name] = node.shapes[k]
        target = outputs[0] if len(outputs) == 1 else ", ".join(outputs)
        return f"{target} = {func}({', '.join(rendered)})"


def input_names(nodes: list[Node], region: Region) -> list[str]:
    names: list[str] = []
    for i, ref in enumerate(region.inputs):
        source = nodes[ref.node]
        parts = source.name.split(".")
        base = parts[-1] if source.kind == "param" else f"x{i}"
        if base in names and source.kind == "param":  # q_proj.weight, k_proj.weight: q_proj_weight ...
            base = "_".join(parts[-2:])
        base = base if base.isidentifier() and base not in names else f"{base}_{i}"
        names.append(base)
    return names


def task_code(nodes: list[Node], region: Region, *, title: str, origin: str) -> str:
    names = input_names(nodes, region)
    writer = _Writer(nodes, region, names)
    body = [writer.statement(nodes[i], k) for k, i in enumerate(region.nodes)]
    returned = [writer.name_of(r) for r in region.outputs]
    result = returned[0] if len(returned) == 1 else "(" + ", ".join(returned) + ")"

    sizes: dict[int, str] = {}
    for ref in region.inputs:
        for size in nodes[ref.node].shapes[ref.index]:
            if size > 1 and size not in sizes:
                sizes[size] = f"D{len(sizes)}"

    def make(ref: Ref) -> str:
        dims = [sizes.get(s, str(s)) for s in nodes[ref.node].shapes[ref.index]]
        dtype = nodes[ref.node].dtypes[ref.index]
        if dtype.startswith(("float", "bfloat")):
            return f"torch.randn({', '.join([*dims, f'dtype=torch.{dtype}'])})"
        as_tuple = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        if dtype == "bool":
            return f"torch.rand({as_tuple}) > 0.5"
        return f"torch.randint(0, 16, {as_tuple}, dtype=torch.{dtype})"

    constants = "\n".join(f"{name} = {size}" for size, name in sizes.items())
    statements = "\n".join(f"        {line}" for line in body)
    return (
        f'"""{title} (fusion opportunity found by akg-op).\n\n{origin}\n"""\n'
        "import torch\n"
        "import torch.nn as nn\n\n"
        f"{constants}\n\n\n"
        "class Model(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n\n"
        f"    def forward(self, {', '.join(names)}):\n"
        f"{statements}\n"
        f"        return {result}\n\n\n"
        "def get_inputs():\n"
        f"    return [{', '.join(make(r) for r in region.inputs)}]\n\n\n"
        "def get_init_inputs():\n"
        "    return []\n"
    )
