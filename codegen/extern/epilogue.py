"""Fused epilogues: the pointwise chain after an extern op, applied to a tile before its store.

A tile space says how a kernel addresses its output: one index expression per dimension of the
kernel's output view (a scalar program id, or a row/column vector broadcast to the tile) and the
mask of that dimension. Each extra tensor an epilogue reads is broadcast (`expand`, stride 0) to
the output's shape by the launcher; only the dimensions where it really varies get an index term,
so a bias reads one row of values, not a whole tile.
"""
from __future__ import annotations

from textwrap import indent

from dataclasses import dataclass, field

from codegen.extern.ops import TRIANGLE_OPS, packet, pointwise_expr

RESERVED = {"acc", "pid", "batch", "offs", "mask", "tl", "triton", "a_tile", "b_tile", "c_mask",
            "offs_cm", "offs_cn", "mask_m", "mask_n", "off_b", "off_h", "offs_m", "offs_d",
            "mask_d", "q", "k", "v", "p", "qk", "k_tile", "v_tile", "m_i", "l_i", "alpha"}


def var(name: str) -> str:
    """A node name as a kernel-local identifier that cannot shadow the template's own locals."""
    return name + "_" if name in RESERVED else name


@dataclass
class TileSpace:
    suffixes: list[str]          # stride argument suffix per output dimension, e.g. ["b", "m", "n"]
    index: list[str]             # index expression per dimension, already broadcast to the tile
    masks: list[str | None]      # mask per dimension (None: always in range)
    row_dim: int | None = None   # the dimensions tril/triu look at (rows, columns), if any
    col_dim: int | None = None
    full_mask: str | None = None  # elementwise kernels: one flat mask for every load
    flat_index: str | None = None  # elementwise kernels: the flat offset of a same-shape operand


@dataclass
class Operand:
    node: object
    name: str
    used: list[bool]             # dimensions where it varies (stride != 0 and size > 1)
    flat: bool = False           # elementwise kernel: same shape as the output, read at `offs`


@dataclass
class Epilogue:
    """Members (pointwise nodes in graph order) over an anchor value, plus the operands they read."""

    anchor: object | None
    anchor_var: str | None
    members: list = field(default_factory=list)
    operands: dict = field(default_factory=dict)  # node (or a synthetic key) -> Operand
    pre_lines: list = field(default_factory=list)  # e.g. the bias of linear/addmm onto `acc`
    custom: dict = field(default_factory=dict)  # member node -> expression (diag @ B, ...)

    def values(self):
        return ([self.anchor] if self.anchor is not None else []) + list(self.members)

    def var_of(self, node):
        if node is self.anchor:
            return self.anchor_var
        if node in self.operands:
            return var(self.operands[node].name)
        return var(node.name)

    def expressions(self, space: TileSpace):
        """Yield (node, 'name = expression') for each member, or raise ValueError(op)."""
        def value_of(arg):
            if hasattr(arg, "op"):
                return self.var_of(arg)
            if isinstance(arg, (list, tuple)):
                return type(arg)(value_of(a) for a in arg)
            return arg

        for line in self.pre_lines:
            yield None, line
        for node in self.members:
            if node in self.custom:
                yield node, f"{var(node.name)} = {self.custom[node]}"
                continue
            kind = TRIANGLE_OPS.get(packet(node))
            if kind is not None:
                x = value_of(node.args[0])
                diagonal = node.args[1] if len(node.args) > 1 else node.kwargs.get("diagonal", 0)
                rows, cols = space.index[space.row_dim], space.index[space.col_dim]
                keep = (f"{cols} <= {rows} + {diagonal}" if kind == "lower"
                        else f"{cols} >= {rows} + {diagonal}")
                yield node, f"{var(node.name)} = tl.where({keep}, {x}, 0.0)"
                continue
            expr = pointwise_expr(node, value_of)
            if expr is None:
                raise ValueError(str(node.target))
            yield node, f"{var(node.name)} = {expr}"

    def operand_load(self, op: Operand, space: TileSpace) -> str:
        """`name = tl.load(...)` for one operand in a tile space."""
        if op.flat:
            terms, masks = [space.flat_index], [space.full_mask]
        else:
            terms = [f"{space.index[d]} * {op.name}_stride_{space.suffixes[d]}"
                     for d, used in enumerate(op.used) if used]
            masks = ([space.full_mask] if space.full_mask else
                     [space.masks[d] for d, used in enumerate(op.used) if used and space.masks[d]])
        address = " + ".join([f"{op.name}_ptr"] + terms)
        if masks:
            return (f"{var(op.name)} = tl.load({address}, mask={' & '.join(masks)}, "
                    f"other=0.0).to(tl.float32)")
        return f"{var(op.name)} = tl.load({address}).to(tl.float32)"

    def stride_params(self, space: TileSpace) -> list[str]:
        out = []
        for op in self.operands.values():
            out.append(f"{op.name}_ptr")
            if not op.flat:
                out += [f"{op.name}_stride_{space.suffixes[d]}" for d, u in enumerate(op.used) if u]
        return out

    def stride_args(self, prepared: dict, space: TileSpace) -> list[str]:
        """Launcher arguments matching stride_params; prepared: operand name -> local tensor name."""
        out = []
        for op in self.operands.values():
            t = prepared[op.name]
            out.append(t)
            if not op.flat:
                out += [f"{t}.stride({d})" for d, u in enumerate(op.used) if u]
        return out


def jit_source(name: str, params: list[str], doc: str, lines: list[str]) -> str:
    """A template kernel's source: one parameter a line, the docstring, the body."""
    return ("@triton.jit\n" f"def {name}(\n" + "".join(f"    {p},\n" for p in params) + "):\n"
            f'    """{doc}"""\n' + indent("\n".join(lines), "    ").replace("    \n", "\n") + "\n")


def allocate_outputs(g, shape: str, device: str) -> tuple[list[str], list[str]]:
    """Launcher lines allocating a group's outputs, and their names."""
    outs = [f"{var(o.name)}_out" for o in g.outputs]
    lines = [f"    {name} = torch.empty({shape}, device={device}, dtype=torch.{g.out_dtype(o)})"
             for name, o in zip(outs, g.outputs)]
    return lines, outs


def launch_lines(kernel: str, call: list[str], returns: list[str]) -> list[str]:
    """The launch (one argument a line) and the return of a template's launcher."""
    return [f"    {kernel}[grid]("] + [f"        {c}," for c in call] + ["    )", f"    return {', '.join(returns)}"]


def store_lines(g, ep, offsets: str, mask: str) -> list[str]:
    """One store per group output, cast to the output's dtype."""
    return [f"tl.store({var(o.name)}_out_ptr + {offsets}, {ep.var_of(o)}.to({var(o.name)}_out_ptr.dtype.element_ty),"
            f" mask={mask})" for o in g.outputs]


def prepare_operands(ep, template: str) -> tuple[list[str], dict]:
    """Launcher lines viewing each epilogue operand like the kernel's output (`template` formats
    the operand's name), and the name each is passed as."""
    lines = [f"    {op.name} = {template.format(op.name)}" for op in ep.operands.values()]
    return lines, {op.name: op.name for op in ep.operands.values()}


def dot_parameters(g, params: list[str]) -> tuple[str, bool]:
    """Add the tl.dot knobs a template needs to its `params`: fp32 inputs choose the dot's input
    precision, half inputs may widen under the interpreter. Returns (tl.dot keyword, half)."""
    fp32, half = g.input_dtype == "float32", g.input_dtype in ("float16", "bfloat16")
    if fp32:
        params.append("INPUT_PRECISION: tl.constexpr")
    if half:
        params.append("WIDEN_DOT: tl.constexpr")
    return (", input_precision=INPUT_PRECISION" if fp32 else ""), half


def launcher_start(g, setup: list[str], view: str, shape: str, device: str) -> tuple[list[str], dict, list[str]]:
    """A template launcher's first lines: its signature, `setup`, the epilogue operands viewed
    like the output (`view` formats a name), the outputs allocated. Returns (lines, operand
    names as passed, output names)."""
    views, prepared = prepare_operands(g.epilogue, view)
    allocations, outs = allocate_outputs(g, shape, device)
    return [f"def {g.name}({', '.join(g.arg_names)}):"] + setup + views + allocations, prepared, outs

