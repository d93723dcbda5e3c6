"""The entry point (`lower`) and the schedule: a captured graph becomes declared kernel plans
(plans.py), which launchers.py renders into one self-contained file with `ModelNew`.

Scheduling: every graph output gets a kernel; a node that a kernel cannot compute in place (see
scope.NeedMaterialize) gets its own kernel and an intermediate buffer, and scheduling restarts.
So pointwise chains fuse into one kernel, pointwise producers and consumers fuse into the row
kernel of the reduction they feed (softmax, layer/RMS norm: one kernel), and only genuinely
different iteration spaces (group norm's statistics, a reduction of a reduction over other dims)
cost an extra kernel.

Before scheduling, the graph is rewritten for fewer passes over big tensors: sum(exp(x - max(x)))
becomes an online `sumexp` (max and sum in one read, see rewrites.py); reductions with few
long rows or a strided layout are split into partials and a small combine (rewrites.py;
variances as Welford triples), and the combine is inlined into whichever row kernel needs it;
a sum linear in its rows' log_softmax statistics (KL divergence) becomes sums that need none,
accumulated in the statistics' own loop (row_sums.py): one read of each row.
Pointwise outputs whose broadcast operands are constant along the trailing dims (statistics,
per-channel parameters) get a rows x columns "tiled" kernel (_tile_dims): per-row work once per
row, contiguous vector loads, no per-element index division. Pools too: their windows' outer
positions are per row, the last output dim runs along the columns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import conv_direct, hybrid, ir, tunables as tunables_mod
from .batching import batch_rule, wrap_forward
from .launchers import render_file
from .capture import capture, load_task
from .emit import Kernel
from .reductions import MAX_INLINE_PARTS
from .scope import NeedMaterialize
from .kernels import nodes_feeding, reductions_feeding, strip_views
from .rewrites import hint_prod, next_pow2, online_softmax, split_reductions
from .shared_rows import share_row_reductions, sources_of
from .row_sums import distribute_row_constants
from .views import same_size
from .ir import Node, Unsupported
from .plans import ROW, KernelPlan


@dataclass
class Lowering:
    ok: bool
    code: str | None = None
    reason: str | None = None
    kernels: list[str] = field(default_factory=list)
    space: dict = field(default_factory=dict)
    tunables: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def lower(task_source: str, *, tunables: dict | None = None, target: str = "cuda") -> Lowering:
    try:
        ns = load_task(task_source)
        cap = capture(task_source, namespace=ns)
    except Unsupported as e:
        return Lowering(False, reason=str(e))
    except Exception as e:  # the task itself does not build or run
        return Lowering(False, reason=f"task failed to run: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    res = _lower_captured(cap, ns, task_source, tunables, target)
    if res.ok:
        res.code = wrap_forward(res.code, batch_rule(load_task(task_source), cap.forward_params))
    return res


def _lower_captured(cap, ns: dict, task_source: str, tunables: dict | None, target: str) -> Lowering:
    vendor_product = False
    convs = conv_direct.convolution_chain(cap.graph)
    if convs is not None:  # cuDNN alone would be rejected: Triton convolutions (direct, or implicit GEMMs)
        space = conv_direct.knobs_that_move(convs)
        try:
            tun = tunables_mod.resolve(tunables, defaults=tunables_mod.DIRECT_CONV_DEFAULTS
                                       | tunables_mod.CONV_GEMM_DEFAULTS)
        except KeyError as e:
            return Lowering(False, reason=str(e.args[0]), space=space)
        _generalize_sizes(cap, task_source, ns)
        try:
            code, kernels = conv_direct.lower_convolutions(cap.graph, convs, task_source, tun)
        except Unsupported as e:
            return Lowering(False, reason=str(e), space=space, tunables=tun)
        return Lowering(True, code=code, kernels=kernels, space=space, tunables=tun)
    if cap.graph.of_kind(ir.EXTERN):  # the extern templates declare (and check) their own tunables
        scalar_args = any(n.attrs.get("scalar") for n in cap.graph.inputs)
        res = None if scalar_args else _lower_extern(task_source, tunables, target)
        if (res is not None and res.ok) or not hybrid.eligible(cap.graph):
            return res if res is not None else Lowering(False, reason="unsupported: a number argument beside a matmul or convolution")
        vendor_product = True  # a norm, reduction or pooling after the product: vendor product, the rest scheduled here
    space = _knobs_that_move(cap.graph)
    try:
        tun = tunables_mod.resolve(tunables, target)
    except KeyError as e:
        return Lowering(False, reason=str(e.args[0]), space=space)
    _generalize_sizes(cap, task_source, ns)
    # after generalising, which compares this graph with other traces: prepare rewrites it (a conv's bias)
    vendor = hybrid.prepare(cap.graph) if vendor_product else None
    try:
        code, kernels = render_file(cap.graph, _schedule(cap.graph, tun, vendor or ()), task_source, tun, cap.calls,
                                    vendor_calls=(lambda ks: hybrid.statements(cap.graph, ks)) if vendor is not None else None)
    except Unsupported as e:
        return Lowering(False, reason=str(e), space=space, tunables=tun)
    return Lowering(True, code=code, kernels=kernels, space=space, tunables=tun)


def _knobs_that_move(graph: ir.Graph) -> dict:
    """The pointwise family's knobs that can change this graph's file: a pool's knobs need a pool,
    the row kernels' a reduction or a scan. A search or a fix that moved another would propose the
    same file again and spend the attempt."""
    space = tunables_mod.space_of("pointwise")
    if not graph.of_kind(ir.POOL):
        space = {k: v for k, v in space.items() if not k.startswith("pointwise.pool_")}
    if not graph.of_kind(ir.REDUCTION) and not graph.of_kind(ir.SCAN):
        space = {k: v for k, v in space.items() if not k.startswith("reduce.")}
    return space


DOUBLED_TRACE_BYTES = 1 << 28  # a task's inputs and state up to this size may be traced at twice its sizes


def _generalize_sizes(cap, task_source: str, ns: dict) -> None:
    """Sizes the trace specialised (see generalize.py) become sizes read from the inputs."""
    from .generalize import same_structure, generalize, perturbed, size_constants

    try:
        consts = size_constants(ns)
    except Exception:
        return
    if not consts:
        return
    # halved, else doubled: halving small sizes can leave a trace of another structure (one
    # channel per group, a 1x1 map an instance norm refuses). Tracing is on fake tensors, but a
    # task that reads values while it builds is built for real: doubled only while that is small.
    try:
        footprint = sum(n.numel_hint * n.dtype.itemsize for n in cap.graph.inputs)
    except (TypeError, ValueError):  # a size without a concrete hint: assume large
        footprint = DOUBLED_TRACE_BYTES + 1
    for scale in (0.5, 2) if footprint <= DOUBLED_TRACE_BYTES else (0.5,):
        try:
            other = capture(task_source, namespace=perturbed(task_source, consts, scale))
        except Exception:  # the changed task does not build
            continue
        if same_structure(cap.graph, other.graph):
            break
    else:
        return  # keep the traced sizes
    extras = []  # one constant changed at a time: tells apart sizes equal in value (HEIGHT == WIDTH)
    for name, value in consts.items() if len(consts) > 1 else ():
        try:
            extras.append(capture(task_source, namespace=perturbed(task_source, {name: value}, scale)).graph)
        except Exception:  # the task needs its constants changed together: not this one alone
            continue
    generalize(cap.graph, other.graph, extras)


def _lower_extern(task_source, tunables, target) -> Lowering:
    try:
        from .extern import lower_extern
    except ImportError as e:
        return Lowering(False, reason=f"unsupported: extern ops (codegen.extern unavailable: {e})")
    res = lower_extern(task_source, tunables=tunables, target=target)
    return Lowering(bool(res.ok), code=res.code, reason=res.reason, kernels=list(res.kernels or []),
                    space=dict(res.space or {}), tunables=dict(res.tunables or {}))


def lower_to_dict(task_source: str, tunables: dict | None = None, target: str = "cuda") -> dict:
    try:
        return lower(task_source, tunables=tunables, target=target).to_dict()
    except Exception as e:  # a compiler bug is a clear failure, not a crash of the caller
        return Lowering(False, reason=f"codegen error: {type(e).__name__}: {e}").to_dict()


# ---------------------------------------------------------------------------------------------


def _dedupe(graph: ir.Graph) -> None:
    """A reduction computed twice (layer norm's mean inside its variance and again for the
    normalisation, say) becomes a view of the first: one kernel, one read."""
    seen: dict = {}
    same: dict = {}  # id(duplicate) -> the node it now views
    for n in graph.nodes:
        if n.kind != ir.REDUCTION:
            continue
        x = n.inputs[0]
        x = same.get(id(x), x)
        key = (n.op, id(x), tuple(n.attrs["dims"]), n.attrs.get("keepdim"), n.attrs.get("correction"),
               n.attrs.get("split"), n.dtype)
        if key in seen:
            n.op, n.kind, n.args, n.attrs = "view", ir.VIEW, [seen[key]], {"shape": n.shape}
            same[id(n)] = seen[key]
        else:
            seen[key] = n


def _schedule(graph: ir.Graph, tun: dict, operands=()):
    """operands: nodes a vendor call in forward reads (codegen.hybrid): each gets a kernel."""
    online_softmax(graph)
    share_row_reductions(graph)  # before the split, which leaves the rows it shares whole
    split_reductions(graph, tun)
    per_row = distribute_row_constants(graph)  # after the split: statistics it split stay as they are
    _dedupe(graph)
    groups: dict = {}  # id(x) -> reductions of x: a looped kernel accumulates them in one loop
    for n in graph.nodes:
        if n.kind == ir.REDUCTION:
            groups.setdefault(id(n.inputs[0]), []).append(n)
    outputs = [o for o in graph.outputs if isinstance(o, Node)]
    materialized = set(graph.inputs) | set(graph.of_kind(ir.EXTERN)) | set(operands) | set(per_row)
    large = max((n.numel_hint for n in graph.nodes if isinstance(n.numel_hint, int)), default=0) >= 2**31 - 1
    for _ in range(4 * len(graph.nodes) + 8):
        targets = [n for n in graph.nodes
                   if (n in outputs or n in materialized) and n.kind not in (ir.INPUT, ir.EXTERN)]
        known = materialized | set(targets)
        try:
            kernels, taken = [], set()
            for n in targets:
                if n in taken:
                    continue
                siblings = _siblings(n, targets, known)
                k = _make_kernel(n, known, tun, large, siblings, groups)
                taken.update(k.outputs)
                kernels.append(k)
            return kernels
        except NeedMaterialize as e:
            if e.node in materialized or e.node in targets:
                raise Unsupported(f"unsupported: could not schedule {e.node.op} ({e.node.name})")
            materialized.add(e.node)
    raise Unsupported("unsupported: scheduling did not converge")


def _siblings(node: Node, targets: list, known: set) -> list:
    """Other materialised reductions over the same input and dims (and the same chunks, for split
    partials): one kernel computes them all, reading the input once."""
    if node.kind != ir.REDUCTION:
        return []
    if node.attrs.get("combine"):  # combines of partials shaped alike: one small kernel
        key = (tuple(node.inputs[0].shape), tuple(node.attrs["dims"]), node.attrs.get("keepdim"))
        return [t for t in targets if t is not node and t.kind == ir.REDUCTION and t.attrs.get("combine")
                and (tuple(t.inputs[0].shape), tuple(t.attrs["dims"]), t.attrs.get("keepdim")) == key]
    key = (id(node.inputs[0]), tuple(node.attrs["dims"]), node.attrs.get("split"))
    same_input = [t for t in targets if t is not node and t.kind == ir.REDUCTION
                  and (id(t.inputs[0]), tuple(t.attrs["dims"]), t.attrs.get("split")) == key]
    return same_input + _row_mates(node, [t for t in targets if t not in same_input], known)


def _row_mates(node: Node, targets: list, known: set) -> list:
    """Reductions of other tensors over the same rows, computed from the same tensors in memory
    (no more, no fewer) without a statistic of their own (instance norm's of relu(y) beside group
    norm's partials of y): the kernel's one column loop accumulates them all
    (RowReductions._loop_mates), one read of each."""
    x = node.inputs[0]
    sources = sources_of(x, known)
    if node.attrs.get("split") or sources is None:
        return []
    return [t for t in targets if t is not node and t.kind == ir.REDUCTION and not t.attrs.get("split")
            and not t.attrs.get("combine") and tuple(t.inputs[0].shape) == tuple(x.shape)
            and list(t.attrs["dims"]) == list(node.attrs["dims"]) and sources_of(t.inputs[0], known) == sources]


def _make_kernel(node: Node, known: set, tun: dict, large: bool, siblings=(), groups=None) -> Kernel:
    plan = _plan(node, known, tun, tuple([node] + list(siblings)))
    return Kernel(plan, known, tun, large, groups or {})


def _plan(node: Node, known: set, tun: dict, outputs: tuple) -> KernelPlan:
    """How the kernel computing `node` (and its sibling `outputs`) walks the data."""
    anchor = node if node.kind in (ir.REDUCTION, ir.SCAN) else _anchor(node, known)
    if anchor is None:
        cols = _tile_dims(node, known)
        if cols:
            # rows x columns tiles: per-row operands (statistics, per-channel parameters) once per row
            return KernelPlan(node, outputs, ROW, "tiled", tuple(node.shape),
                              tuple(range(len(node.shape) - cols, len(node.shape))),
                              pool=bool(nodes_feeding(node, known, (ir.POOL,))))
        return KernelPlan(node, outputs)
    x = anchor.inputs[0]
    dims = tuple(anchor.attrs["dims"] if anchor.kind == ir.REDUCTION else [anchor.attrs["dim"]])
    if anchor is node and node.attrs.get("split"):
        return KernelPlan(node, outputs, ROW, "split", tuple(x.shape), dims, split=node.attrs["split"])
    n_cols = hint_prod(x, dims)
    n_rows = hint_prod(x, [d for d in range(len(x.shape)) if d not in dims])
    if (anchor is not node and n_rows < 128 and n_cols >= 16384 and tuple(node.shape) == tuple(x.shape)
            and anchor.kind == ir.REDUCTION):
        # few rows, every element written: give the reduction its own kernel, keep this one wide
        raise NeedMaterialize(anchor)
    strategy = tun["reduce.strategy"]
    # reduced dims not innermost: neighbouring rows are neighbouring addresses, so a program takes
    # a wide block of rows (the contiguous dim, across threads) and walks the reduced dims
    strided = (len(x.shape) - 1) not in dims and hint_prod(x, [len(x.shape) - 1]) > 1
    if strategy == "auto":
        # strided: whole columns in registers only when a block of >= 16 rows still fits
        keep_whole = next_pow2(n_cols) * (16 if strided else 1) <= tun["reduce.persistent_max"]
        strategy = "persistent" if keep_whole else "looped"
    return KernelPlan(node, outputs, ROW, strategy, tuple(x.shape), dims, strided=strided)


def _tile_dims(node: Node, known: set) -> int:
    """How many trailing dims of a pointwise node to lay along a tile's columns: the longest run
    that every broadcast operand (a statistic, a per-channel parameter) is constant along, when
    there is such an operand and the run is long. 0: a flat 1-D kernel suits it as well."""
    nd = len(node.shape)
    pool = strip_views(node, known)  # max_pool1d is a 2-D pool over (N, C, 1, L), viewed back
    if (nd >= 2 and pool.kind == ir.POOL and same_size([pool.shape[-1]], [node.shape[-1]])
            and hint_prod(node, [nd - 1]) >= 32):
        # a window per output element: rows (batch, channel, outer spatial dims) decomposed once
        # per row, the last dim's outputs along the columns, no per-element index division
        return 1
    if nd < 2 or node.kind != ir.POINTWISE:
        return 0
    varying, broadcast = set(), False
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for a in n.inputs:
            shape = tuple(a.shape)
            if a.kind == ir.VIEW and a.op == "expand" and a not in known:
                shape = tuple(a.inputs[0].shape)  # right-aligned, as broadcasting
            if all(s == "1" for s in shape):
                continue  # a scalar
            k = nd - len(shape)
            if k < 0:
                return 0
            if shape == tuple(node.shape):
                if a.kind == ir.POINTWISE and a not in known:
                    stack.append(a)
                continue
            broadcast = True
            varying |= {k + j for j, s in enumerate(shape) if s != "1"}
    if not broadcast:
        return 0
    cols = 0
    for d in reversed(range(nd)):
        if d in varying:
            break
        cols += 1
    if cols in (0, nd) or hint_prod(node, range(nd - cols, nd)) < 256:
        return 0
    return cols


def _inlinable(r: Node) -> bool:
    """A combine of few partials over one dim: kernels that need it compute it in place."""
    if not r.attrs.get("combine") or len(r.attrs["dims"]) != 1:
        return False
    h = r.inputs[0].hint[r.attrs["dims"][0]]
    return isinstance(h, int) and h <= MAX_INLINE_PARTS


def _anchor(node: Node, known: set) -> Node | None:
    """The reduction/scan whose row kernel computes node: one over node's own shape if any.
    Combines of split partials do not anchor: a kernel loads and combines them in place."""
    found = reductions_feeding(node, known, skip=lambda n: n.kind == ir.REDUCTION and _inlinable(n))
    if not found:
        return None
    shape = tuple(strip_views(node, known).shape)
    for r in found:
        if tuple(r.inputs[0].shape) in (tuple(node.shape), shape):
            return r
    return found[0]


# ---------------------------------------------------------------------------------------------
# rendering
