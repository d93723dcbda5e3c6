"""The fused kernels' sources, their launchers and ModelNew.forward, for codegen.lower's schedule.

Each kernel gets a launcher of the same name without `_kernel` (`layer_norm(x, weight, bias, ...)`)
that allocates the outputs, picks block sizes from the tunables and launches it. Only the tunables,
helpers and imports the file uses are written (render.assemble).
"""
from __future__ import annotations

import builtins
import re

from . import ir
from .emit import Kernel
from .reductions import HELPERS
from .scope import _prod
from .ir import Node, Unsupported
from .kernels import DTYPE_NAME, prune
from .naming import kernel_names
from .tidy import tidy
from .render import assemble, module_names, reference_parts, state_access

# name, tunable key, comment: written into the file when the file uses it
TUNABLES = [
    ("POINTWISE_BLOCK", "pointwise.BLOCK", "elements per program of a pointwise kernel (and of a rows x columns tile)"),
    ("POINTWISE_WARPS", "pointwise.num_warps", ""),
    ("POOL_BLOCK", "pointwise.pool_BLOCK", "outputs per program of a pool's rows x columns tile"),
    ("ROW_TILE", "reduce.TILE", "elements per program of a persistent row block, or per loop step of a strided reduction"),
    ("ROW_BLOCK_N", "reduce.BLOCK_N", "column block of a looped reduction"),
    ("ROW_STRIDED_M", "reduce.strided_BLOCK_M", "rows per program of a looped reduction over dims that are not innermost"),
    ("ROW_WARPS", "reduce.num_warps", "0: picked from the block size"),
    ("NUM_STAGES", "num_stages", ""),
]

ROW_BLOCKS = '''def row_blocks(n_rows, n_cols, persistent, strided=False, welford=False):
    """Block sizes of a row kernel: whole rows (several per program when short), a column loop,
    or (strided: rows are the contiguous dim, laid across threads) a wide block of rows holding
    whole columns or looping over them. welford: the column loop updates a variance."""
    if persistent:
        block_n = triton.next_power_of_2(max(n_cols, 1))
        # strided: 16-64 contiguous rows (whole 64-256 byte segments), at most 16384 elements
        block_m = ROW_TILE // block_n if not strided else min(64, max(16, 16384 // block_n))
        block_m = max(1, min(triton.next_power_of_2(max(n_rows, 1)), block_m))
    elif strided:
        block_m = min(ROW_STRIDED_M, triton.next_power_of_2(max(n_rows, 1)))
        block_n = min(max(ROW_TILE // block_m, 1), triton.next_power_of_2(max(n_cols, 1)))
    else:  # no wider than the row (a kernel planned at a longer row, run shrunk on the CPU), rows filling the block
        block_n = min(ROW_BLOCK_N, triton.next_power_of_2(max(n_cols, 1)))
        block_m = max(1, min(triton.next_power_of_2(max(n_rows, 1)), ROW_BLOCK_N // block_n))
    if ROW_WARPS:
        warps = ROW_WARPS
    elif welford and not persistent and not strided:
        # a column loop of Welford updates (a variance) runs a longer dependent chain an element:
        # 8 warps to a 2048-column step hide it (H100, by do_bench: conv + group norm + instance
        # norm 16.2 -> 14.8 ms, instance norm 8.0 -> 7.8; loops without it gained nothing, or lost)
        warps = 8 if block_m * block_n >= 2048 else 4
    else:
        warps = 4 if block_m * block_n <= 2048 else 8 if block_m * block_n <= 8192 else 16
    return block_m, block_n, warps'''

TILE_BLOCKS = '''def tile_blocks(n_rows, n_cols, elements):
    """Tile of a rows x columns elementwise kernel: `elements` a program (many small programs
    stream best), columns first; 16 times as many under the CPU interpreter, which runs programs
    one by one."""
    budget = elements * (16 if INTERPRETED else 1)
    block_n = min(triton.next_power_of_2(max(n_cols, 1)), budget)
    block_m = max(1, min(triton.next_power_of_2(max(n_rows, 1)), budget // block_n))
    return block_m, block_n, POINTWISE_WARPS'''


# What one program of each kind of kernel does (the kernel's docstring).
LAYOUT = {
    "pointwise": "BLOCK elements per program",
    "persistent": "BLOCK_M whole rows per program, held in registers",
    "looped": "BLOCK_M rows per program, their columns in BLOCK_N-wide steps",
    "split": "SPLIT programs share each row, each reducing one chunk of it to partials",
    "tiled": "one BLOCK_M x BLOCK_N tile per program, per-row values computed once per row",
}


def _size_one_guards(graph: ir.Graph) -> list[str]:
    """A dim the trace saw at size 1 is planned as 1 (a broadcast, a batch of one: the kernels read
    its index 0 only), so an input with another size there is refused, not silently half-read."""
    lines = []
    for n in graph.inputs:
        ones = [d for d, size in enumerate(n.shape) if size == "1"]
        if n.attrs["state"] or n.attrs.get("scalar") or not ones:
            continue
        dims = f"dim {ones[0]}" if len(ones) == 1 else "dims " + ", ".join(map(str, ones))
        lines += [f"        if {' or '.join(f'{n.name}.shape[{d}] != 1' for d in ones)}:",
                  f'            raise ValueError(f"ModelNew was generated for size 1 in {dims} of {n.name}, as the '
                  f'task gave it; got shape {{tuple({n.name}.shape)}}: generate it again for this size")']
    return lines


def tunables_block(tun: dict, text: str) -> str:
    lines = ["# Tunables (the search space is codegen.tunables.SPACE)."]
    for name, key, comment in TUNABLES:
        if re.search(rf"\b{name}\b", text):
            lines.append(f"{name} = {tun[key]!r}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) if len(lines) > 1 else ""


def _symbols_in(text: str, symbols) -> list[str]:
    found = set(re.findall(r"\b(s\d+)\b", text))
    return sorted((s for s in found if s in symbols), key=lambda s: int(s[1:]))


def _name_buffers(graph: ir.Graph, kernels: list[Kernel], taken: set) -> list[str]:
    """Name the buffers kernels write (`out`, `out0`..., intermediates after their op), renaming
    the IR nodes; returns each kernel's body and pointer names (node -> name) with the new names."""
    taken = taken | {n.name for n in graph.inputs} | set(dir(builtins)) | {"device", "math", "torch", "triton", "tl"}
    results = [o for o in graph.outputs if isinstance(o, Node)]
    renames = {}
    for k in kernels:
        for o in k.outputs:
            if o in results:
                new = "out" if len(results) == 1 else f"out{results.index(o)}"
            else:
                new, n = o.op.strip("_"), 2
                while new in taken:
                    new, n = f"{o.op.strip('_')}_{n}", n + 1
            taken.add(new)
            renames[o] = new
    bodies, pointers = [], []
    for k in kernels:
        body = "\n".join(prune(k.root.lines + [l for s in k.sections for l in s.lines]))
        new_ptrs = {ptr: f"{renames[node]}_ptr" for node, ptr in k.ptrs.items() if node in renames}
        if new_ptrs:  # all at once: a new name may be another buffer's old one
            body = re.sub(r"\b(" + "|".join(map(re.escape, new_ptrs)) + r")\b", lambda m: new_ptrs[m.group(1)], body)
        pointers.append({node: new_ptrs.get(ptr, ptr) for node, ptr in k.ptrs.items()})
        bodies.append("\n".join(tidy(body.splitlines())))
    for node, new in renames.items():
        node.name = new
    return bodies, pointers


def render_file(graph: ir.Graph, kernels: list[Kernel], task_source: str, tun: dict, calls: list[str],
                vendor_calls=None):
    """(the file's source, one summary line per kernel). `vendor_calls(kernels)`: forward's
    matmul/convolution statements keyed by the launch they precede (codegen.hybrid)."""
    reserved = set(HELPERS) | {"cdiv", "row_blocks", "tile_blocks", "math", "torch", "nn", "triton", "tl", "F"}
    reserved |= module_names(task_source)  # the reference's definitions stay in the file
    vendor_results = {n.name for n in graph.of_kind(ir.EXTERN)}
    names = kernel_names(kernels, calls, [_fused_ops(k) for k in kernels], reserved | vendor_results)
    bodies, pointers = _name_buffers(graph, kernels, set(names) | vendor_results)
    symbols = graph.symbols
    parts = []
    launchers = []
    summaries = []
    helpers: set[str] = set()
    for k, body, ptrs, launcher in zip(kernels, bodies, pointers, names):
        node, kname, plan = k.node, f"{launcher}_kernel", k.plan
        shape_text = " ".join(node.shape)
        syms = _symbols_in(body + " " + shape_text, symbols)
        if re.search(r"\bs\d+\b", re.sub(r"\b(" + "|".join(syms) + r")\b", "", body) if syms else body):
            unknown = set(re.findall(r"\b(s\d+)\b", body)) - set(syms)
            if unknown:
                raise Unsupported(f"unsupported: size {sorted(unknown)[0]} not readable from the inputs")
        ptr_nodes = list(ptrs)  # includes the outputs
        outs = k.outputs
        in_nodes = [n for n in ptr_nodes if n not in outs]
        helpers |= k.helpers
        strides = [(n, d) for n in in_nodes for d in sorted(k.stride_reads.get(n, ()))]
        # The last dim's stride is a constexpr: almost always 1, and known to be, the loads along it
        # are contiguous and vectorised (a runtime stride hides that from the compiler; a tiled
        # row kernel then loads column by column). Another value compiles once more.
        params = [ptrs[n] for n in in_nodes] + [ptrs[o] for o in outs] + syms + [
            f"{n.name}_stride{d}" + (": tl.constexpr" if d == len(n.shape) - 1 else "") for n, d in strides]
        if plan.launch[0] == "pointwise":
            const = ["BLOCK: tl.constexpr"]
        elif plan.launch[1] == "split":
            const = ["SPLIT: tl.constexpr", "BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr"]
        else:
            const = ["BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr"]
        const += [f"{c}: tl.constexpr" for c in k.constexprs]
        extra = "".join(f", {c}={e}" for c, e in k.constexprs.items())
        if k.large:  # traced at 2**31 elements or more: 64-bit index math always
            casts = [f"    {s} = {s}.to(tl.int64)" for s in syms]
        else:
            # 32-bit index math at the traced sizes; the file serves any size, so a launch on
            # 2**31 elements or more compiles a 64-bit variant (program id and sizes widened)
            casts = ["    program = tl.program_id(0)",
                     "    if INT64_INDEX:  # 2**31 elements or more: 64-bit offsets",
                     "        program = program.to(tl.int64)"] + [f"        {s} = {s}.to(tl.int64)" for s in syms]
            tensors = [f"{n.name}.numel()" for n in in_nodes + list(outs)]
            const.append("INT64_INDEX: tl.constexpr")
            extra += f", INT64_INDEX={'max(' + ', '.join(tensors) + ')' if len(tensors) > 1 else tensors[0]} >= 2**31"
        fused = _fused_ops(k)
        what = f"{plan.launch[1] + ' row' if plan.launch[0] == 'row' else 'pointwise'} kernel: {', '.join(fused) or 'copy'}"
        summaries.append(f"{kname}: {what}")
        src = ["@triton.jit",
               f"def {kname}({', '.join(params + const)}):",
               f'    """{LAYOUT[plan.launch[1] if plan.launch[0] == "row" else "pointwise"]}: {", ".join(fused) or "copy"}."""']
        src += casts
        src += ["    " + l for l in body.splitlines()]
        parts.append("\n".join(src))
        # launcher
        largs = [n.name for n in in_nodes] + syms
        lsrc = [f"def {launcher}({', '.join(largs + ['device'])}):"]
        for o in outs:
            out_shape = "(" + ", ".join(o.shape) + ("," if len(o.shape) == 1 else "") + ")"
            lsrc.append(f"    {o.name} = torch.empty({out_shape}, dtype={DTYPE_NAME[o.dtype]}, device=device)")
        call_args = ", ".join([n.name for n in in_nodes] + [o.name for o in outs] + syms
                              + [f"{n.name}.stride({d})" for n, d in strides])
        if plan.launch[0] == "pointwise":
            lsrc += [f"    n_elements = {_prod(node.shape)}",
                     "    block = POINTWISE_BLOCK * (16 if INTERPRETED else 1)  # the CPU interpreter runs programs one by one",
                     "    grid = (cdiv(n_elements, block),)",
                     f"    {kname}[grid]({call_args}, BLOCK=block{extra}, num_warps=POINTWISE_WARPS, num_stages=NUM_STAGES)"]
        elif plan.launch[1] == "split":
            lsrc += [f"    n_rows, n_cols = {k.n_rows}, {k.n_cols}",
                     "    block_m, block_n = 1, ROW_BLOCK_N",
                     "    if INTERPRETED:  # the CPU interpreter runs programs one by one: few wide ones, same partials",
                     f"        block_n = min(ROW_BLOCK_N, triton.next_power_of_2(cdiv(n_cols, {plan.split})))",
                     f"        block_m = min({plan.split}, max(1, ROW_TILE // block_n))",
                     f"    grid = (cdiv(n_rows * {plan.split}, block_m),)  # {plan.split} partials per row",
                     "    warps = ROW_WARPS or 8",
                     f"    {kname}[grid]({call_args}, SPLIT={plan.split}, BLOCK_M=block_m, BLOCK_N=block_n{extra}, num_warps=warps, num_stages=NUM_STAGES)"]
        elif plan.launch[1] == "tiled":
            lsrc += [f"    n_rows, n_cols = {k.n_rows}, {k.n_cols}",
                     "    block_m, block_n, warps = tile_blocks(n_rows, n_cols, "
                     + (("POOL_BLOCK)" if k.pool_run == 1 else f"POOL_BLOCK // {k.pool_run})  # {k.pool_run} lanes an output")
                        if plan.pool else "POINTWISE_BLOCK)"),
                     "    grid = (cdiv(n_rows, block_m) * cdiv(n_cols, block_n),)",
                     f"    {kname}[grid]({call_args}, BLOCK_M=block_m, BLOCK_N=block_n{extra}, num_warps=warps, num_stages=NUM_STAGES)"]
        else:
            persistent = plan.launch[1] == "persistent"
            lsrc += [f"    n_rows, n_cols = {k.n_rows}, {k.n_cols}",
                     f"    block_m, block_n, warps = row_blocks(n_rows, n_cols, persistent={persistent}"
                     + (", strided=True" if plan.strided else "")
                     + (", welford=True" if k.welford_loop and not persistent and not plan.strided else "") + ")",
                     "    grid = (cdiv(n_rows, block_m),)",
                     f"    {kname}[grid]({call_args}, BLOCK_M=block_m, BLOCK_N=block_n{extra}, num_warps=warps, num_stages=NUM_STAGES)"]
        lsrc.append(f"    return {', '.join(o.name for o in outs)}")
        parts.append("\n".join(lsrc))
        launchers.append((launcher, outs, largs))

    # forward
    fwd = [f"    def forward(self, {', '.join(graph.arg_names)}):"]
    # inputs every kernel reads through their strides are passed as they are (no copy)
    flat = set().union(*[k.flat_reads for k in kernels]) if kernels else set()
    strided = set().union(*[k.stride_reads for k in kernels]) if kernels else set()
    for n in graph.inputs:
        if n.attrs["state"]:
            fwd.append(f"        {n.name} = {state_access(graph.state_names[n.attrs['position']])}")
        elif not n.attrs.get("scalar") and (n in flat or n not in strided):
            fwd.append(f"        {n.name} = {n.name}.contiguous()")
    fwd += _size_one_guards(graph)
    bound = set()
    for sym, (pos, dim) in symbols.items():
        fwd.append(f"        {sym} = {graph.inputs[pos].name}.shape[{dim}]")
        bound.add(sym)
    tensors = [n for n in graph.inputs if not n.attrs.get("scalar")]
    first = next((n for n in tensors if not n.attrs["state"]), tensors[0] if tensors else None)
    fwd.append(f"        device = {first.name}.device" if first is not None else "        device = torch.device('cuda')")
    for n in graph.inputs:  # a Python number argument: the 0-d tensor the kernels were traced with
        if n.attrs.get("scalar"):
            fwd.append(f"        {n.name} = torch.full((), {n.name}, dtype={DTYPE_NAME[n.dtype]}, device=device)")
    vendor = vendor_calls(kernels) if vendor_calls else {}
    for i, (launcher, outs, largs) in enumerate(launchers):
        fwd += ["        " + line for line in vendor.get(i, [])]
        fwd.append(f"        {', '.join(o.name for o in outs)} = {launcher}({', '.join(largs + ['device'])})")
    fwd += ["        " + line for line in vendor.get(len(launchers), [])]
    outs = [o.name if isinstance(o, Node) else repr(o) for o in graph.outputs]
    if graph.returns_tuple:
        fwd.append(f"        return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    else:
        fwd.append(f"        return {outs[0]}")

    # a size read from the inputs that no launch or view uses is not written
    fwd = [line for line in fwd if not (m := re.match(r"\s+(\w+) = \w+\.shape\[\d+\]$", line)) or
           re.search(rf"\b{m.group(1)}\b", "\n".join(other for other in fwd if other is not line))]
    preamble, model_new = reference_parts(task_source, "\n".join(fwd))
    text = "\n".join(parts)
    used = [block for name, block in (("row_blocks", ROW_BLOCKS), ("tile_blocks", TILE_BLOCKS))
            if re.search(rf"\b{name}\(", text)]
    if "INTERPRETED" in text + "\n".join(used):
        used.insert(0, '# Under TRITON_INTERPRET=1 the kernels run on the CPU (correctness only).\n'
                       'INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"')
    jit_helpers = ["@triton.jit\n" + HELPERS[name] for name in sorted(helpers)]
    sections = [tunables_block(tun, text + "\n".join(used))] + used + jit_helpers + parts
    doc = (f"Triton lowering of the task's Model ({len(kernels)} kernel{'s' if len(kernels) != 1 else ''}), "
           "generated by akg-op's embedded generator.\n\n" + "\n".join(summaries) + "\n\n"
           "Sizes are read from the inputs at run time, so the file serves any size of the task's shapes.")
    code = assemble(doc, sections, model_new, preamble)
    code = _rename_symbols(code, graph)
    return code, summaries


def _fused_ops(k: Kernel) -> list[str]:
    seen, out = set(), []
    stack = list(k.outputs)
    order = []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n not in k.outputs and (n in k.materialized or n.kind in (ir.INPUT, ir.EXTERN)):
            continue
        order.append(n)
        stack.extend(n.inputs)
    for n in reversed(order):
        if n.kind in (ir.VIEW, ir.CONST) and n.op in ("view", "broadcast_in_dim", "expand", "full"):
            continue
        if n.op not in out:
            out.append(n.op)
    return out


def _rename_symbols(code: str, graph: ir.Graph) -> str:
    names = {}
    used = set(re.findall(r"\b[A-Za-z_]\w*\b", code))
    for sym, (pos, dim) in sorted(graph.symbols.items()):
        base = f"{graph.inputs[pos].name}_size{dim}"
        name = base
        while name in used and name != sym:
            name += "_"
        names[sym] = name
        used.add(name)
    if not names:
        return code
    return re.sub(r"\b(s\d+)\b", lambda m: names.get(m.group(1), m.group(1)), code)


