"""Capture a KernelBench task's `Model.forward` as an ATen-level graph, on fake tensors.

    cap = capture(task_source)
    cap.graph      # ir.Graph: nodes classified (pointwise / reduction / scan / view / pool / extern)
    cap.fx         # the traced torch.fx.GraphModule (ATen ops after decomposition)

    tpl = trace_templates(namespace)   # the same model, template ops whole (codegen.extern's input)

How: the task source is executed in a fresh namespace (the caller runs us in a sandboxed worker)
and `Model(*get_init_inputs())` and `get_inputs()` run under a FakeTensorMode: every tensor has
its shape, dtype and device but no storage, so a task with 8 GB inputs captures in a few hundred
MB. (A task whose constructor or get_inputs reads tensor values is built for real, once.) Codegen
needs only shapes and dtypes: the generated ModelNew keeps the reference's own constructor.

`capture` traces `functional_call(model, state, inputs)` with `make_fx` over symbolic sizes and a
decomposition table that breaks composite ops (softmax, norms, losses, activations) down to
pointwise math and plain reductions; a product with one output column or row (a matrix times a
vector) becomes a sum of products, a reduction. Parameters and buffers are graph inputs, so the
generated ModelNew passes `self.weight` etc. and keeps the reference's state_dict keys.
`trace_templates` traces the same call before autograd's decompositions (pre-dispatch, sizes as
traced), so `linear`, `matmul`, `conv2d` and `scaled_dot_product_attention` stay whole: the graph
the matmul / attention / convolution templates plan their groups on.

Anything the IR has no place for raises `Unsupported("unsupported: aten.<op>")`.
"""
from __future__ import annotations

import contextlib
import inspect
import operator
from dataclasses import dataclass

import torch

from . import ir
from .classify import DECOMPOSED_EXTERN, EXTERN_OPS, POINTWISE_OPS, _convert, _hint, _ident, _size_str, _sym
from .ir import Node, Unsupported
from .naming import CallRecorder

aten = torch.ops.aten
prims = torch.ops.prims


# Composite ops we want broken down, on top of torch's core-ATen table.
_EXTRA_DECOMPS = [
    aten._softmax, aten._log_softmax, aten.native_layer_norm, aten.native_group_norm, aten.gelu,
    aten.linalg_vector_norm, aten.var_mean, aten.var, aten.std, aten.mean, aten.native_batch_norm,
    aten._native_batch_norm_legit_no_training, aten._native_batch_norm_legit_functional,
    aten._native_batch_norm_legit, aten.elu, aten.hardtanh, aten.leaky_relu, aten.clamp_min,
    aten.clamp_max, aten.sigmoid_backward, aten.glu, aten.hardswish, aten.selu, aten.celu,
    aten.softplus, aten.mish, aten.silu, aten.hardsigmoid, aten.logsumexp, aten.rms_norm,
    aten.addcmul, aten.addcdiv, aten.lerp, aten.cosine_similarity, aten.triplet_margin_loss,
    aten.huber_loss, aten.smooth_l1_loss, aten.mse_loss, aten.l1_loss, aten.kl_div,
    aten.nll_loss_forward, aten.norm, aten.frobenius_norm, aten.instance_norm, aten.batch_norm,
    aten.group_norm, aten.layer_norm, aten.cross_entropy_loss, aten.nll_loss, aten.softmax,
    aten.log_softmax, aten.margin_ranking_loss, aten.hinge_embedding_loss, aten.soft_margin_loss,
    aten.binary_cross_entropy, aten.binary_cross_entropy_with_logits, aten.pairwise_distance,
    aten.max_pool1d, aten.avg_pool1d, aten.adaptive_avg_pool1d, aten.max_pool1d_with_indices,
]

def decomposition_table() -> dict:
    from torch._decomp import core_aten_decompositions, get_decompositions

    table = dict(core_aten_decompositions())
    table.update(get_decompositions([op for op in _EXTRA_DECOMPS]))
    for op in list(table):  # keep the ops codegen.extern lowers whole
        if _packet_name(op) in EXTERN_OPS and _packet_name(op) not in DECOMPOSED_EXTERN:
            del table[op]
    table.update({aten.mm.default: _matvec_as_row_sums, aten.bmm.default: _matvec_as_row_sums,
                  aten.mv.default: _matvec_as_row_sums, aten.addmm.default: _addmv_as_row_sums,
                  aten.dot.default: _matvec_as_row_sums})
    return table


def _matvec_as_row_sums(a, b):
    """A product with one output column or one output row (matrix x vector, vector x matrix: a
    linear layer at batch 1) is a reduction, not a matmul: it reads the matrix once, at two flops a
    value, so tensor-core tiles would sit 15/16 idle on a vector padded to 16. As a sum of products
    it gets the reduction kernels' read bandwidth (along the matrix's rows whichever way it is
    stored) and fuses with what follows. Accumulated in fp32 (fp64 kept), as the vendor GEMV.
    Other products, and integer ones, stay whole for the matmul template."""
    if not a.dtype.is_floating_point:
        return NotImplemented
    acc = torch.promote_types(a.dtype, torch.float32)
    a, b, dtype = a.to(acc), b.to(acc), a.dtype
    if b.dim() == 1:  # mv (M, K) x (K,), dot (K,) x (K,)
        return (a * b).sum(-1).to(dtype)
    if b.shape[-1] == 1:
        return (a * b.transpose(-1, -2)).sum(-1, keepdim=True).to(dtype)
    if a.shape[-2] == 1:
        return (a.transpose(-1, -2) * b).sum(-2, keepdim=True).to(dtype)
    return NotImplemented


def _addmv_as_row_sums(bias, a, b, *, beta=1, alpha=1):
    """addmm (a linear layer) with one output column or row: see _matvec_as_row_sums."""
    product = _matvec_as_row_sums(a, b)
    if product is NotImplemented:
        return NotImplemented
    return (bias if beta == 1 else beta * bias) + (product if alpha == 1 else alpha * product)


def _packet_name(target) -> str:
    name = getattr(target, "__name__", str(target))  # "add.Tensor"
    return name.split(".")[0]


@dataclass
class Capture:
    graph: ir.Graph
    fx: torch.fx.GraphModule
    namespace: dict  # the task module's globals (Model, get_inputs, get_init_inputs, constants)
    forward_params: list[str]
    calls: list[str]  # the outermost torch functions forward() called, in order (names kernels)


@dataclass
class Traced:
    """A traced forward: its placeholders are the model's state (in `state_names` order), then
    forward()'s inputs (named `arg_names`)."""

    fx: torch.fx.GraphModule
    state_names: list[str]
    arg_names: list[str]
    returns_tuple: bool  # forward() returns a tuple (or list) rather than one tensor


def load_task(task_source: str) -> dict:
    """Execute a task file in a fresh namespace and return it."""
    ns: dict = {"__name__": "akg_task"}
    exec(compile(task_source, "<task>", "exec"), ns)
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if name not in ns:
            raise Unsupported(f"task defines no {name}")
    return ns


def _build(ns: dict, make_mode):
    """Model(*get_init_inputs()) in eval mode (as the harness runs both models) and get_inputs(),
    under a fake mode from `make_mode()` (no storage is allocated), or for real when the task
    reads tensor values while it builds (an `.item()`, a data-dependent size).
    Returns (model, state, inputs, the fake mode to trace in)."""
    def build():
        torch.manual_seed(0)
        model = ns["Model"](*list(ns["get_init_inputs"]())).eval()
        return model, list(ns["get_inputs"]())

    mode = make_mode()
    try:
        with mode:
            model, inputs = build()
        # with symbolic sizes a value read becomes an unbacked symbol rather than an error
        if mode.shape_env is not None and mode.shape_env.pending_fresh_unbacked_symbols:
            raise ValueError("the task reads tensor values while it builds")
    except Unsupported:
        raise
    except Exception:
        mode = make_mode()
        model, inputs = build()
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    if not all(isinstance(t, torch.Tensor) or type(t) in (bool, int, float) for t in list(state.values()) + inputs):
        raise Unsupported("unsupported: non-tensor forward() input")
    return model, state, inputs, mode


def _arg_names(model, inputs) -> tuple[list[str], list[str]]:
    fwd_params = [p for p in inspect.signature(model.forward).parameters]
    names = fwd_params[: len(inputs)] if len(fwd_params) >= len(inputs) else [f"x{i}" for i in range(len(inputs))]
    return fwd_params, names


def _symbolic(mode, t: torch.Tensor, index: int) -> torch.Tensor:
    """A fake tensor like `t` (shape, strides, dtype, device) with symbolic sizes, made from its
    metadata alone: the sizes symbols are those make_fx gives input `index`."""
    from torch._dynamo.source import ConstantSource

    example = torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")
    sizes, strides, _ = mode.shape_env.create_symbolic_sizes_strides_storage_offset(
        example, ConstantSource(f"input{index}"))
    with mode:
        return torch.empty_strided(sizes, strides, dtype=t.dtype, device=t.device)


def _traceable(model, state: dict, recorder=None):
    """forward() as a function of (state..., inputs...): parameters and buffers are graph inputs."""
    names = list(state)

    def run(*flat):
        with recorder if recorder is not None else contextlib.nullcontext():
            return torch.func.functional_call(model, dict(zip(names, flat[: len(names)])), tuple(flat[len(names):]))
    return run


def _trace_failed(e: Exception) -> Unsupported:
    # data-dependent control flow and the like
    return Unsupported(f"unsupported: could not trace Model.forward ({type(e).__name__}: {str(e).splitlines()[0][:160]})")


def capture(task_source: str, *, namespace: dict | None = None) -> Capture:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    import torch.fx.experimental._config as fx_config

    ns = namespace or load_task(task_source)
    # no duck shaping: two dims equal at these sizes (HEIGHT == WIDTH) may differ at others
    with fx_config.patch(use_duck_shape=False):
        model, state, inputs, mode = _build(
            ns, lambda: FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True))
        # A Python number among forward()'s inputs (forward(x, scale: float)) is traced as a 0-d
        # tensor; ModelNew turns the number it is called with into one (see launchers.render_file).
        scalars = {i: type(v) for i, v in enumerate(inputs) if type(v) in (bool, int, float)}
        tensors = [torch.tensor(v) if i in scalars else v for i, v in enumerate(inputs)]
        flat = [_symbolic(mode, t, i) for i, t in enumerate(list(state.values()) + tensors)]
        recorder = CallRecorder()
        try:
            gm = make_fx(_traceable(model, state, recorder), decomposition_table=decomposition_table(),
                         tracing_mode="symbolic")(*flat)
        except Unsupported:
            raise
        except Exception as e:
            raise _trace_failed(e) from None
    fwd_params, arg_names = _arg_names(model, inputs)
    graph = _to_ir(gm, list(state), arg_names)
    for i, kind in scalars.items():
        graph.inputs[len(state) + i].attrs["scalar"] = kind.__name__
    return Capture(graph, gm, ns, fwd_params, recorder.calls)


def _batch_norm_with_running_stats(input, weight, bias, running_mean, running_var, training, momentum, eps,
                                   cudnn_enabled):
    """Batch norm in eval mode is a per-channel affine map: as pointwise ops it fuses into the
    epilogue of the convolution or matmul before it (codegen.extern). Training mode stays whole."""
    if training or running_mean is None or running_var is None:
        return NotImplemented
    per_channel = [1, -1] + [1] * (input.dim() - 2)
    out = (input - running_mean.view(per_channel)) * torch.rsqrt(running_var.view(per_channel) + eps)
    if weight is not None:
        out = out * weight.view(per_channel)
    return out + bias.view(per_channel) if bias is not None else out


def trace_templates(ns: dict) -> Traced:
    """The forward traced before autograd's decompositions, on fake tensors at the task's sizes:
    composite ops stay whole (linear, matmul, conv2d, scaled_dot_product_attention, gelu)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    model, state, inputs, _ = _build(ns, lambda: FakeTensorMode(allow_non_fake_inputs=True))
    flat = [t.detach() if isinstance(t, torch.Tensor) else t for t in list(state.values()) + inputs]
    try:
        gm = make_fx(_traceable(model, state), pre_dispatch=True, tracing_mode="fake",
                     decomposition_table={aten.batch_norm.default: _batch_norm_with_running_stats})(*flat)
    except Unsupported:
        raise
    except Exception as e:
        raise _trace_failed(e) from None
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return Traced(gm, list(state), _arg_names(model, inputs)[1], isinstance(out.args[0], (list, tuple)))


# ---------------------------------------------------------------------------------------------
# fx -> IR


def bind(target, args, kwargs) -> dict:
    """Name every argument of an ATen call after its schema (defaults filled in)."""
    schema = target._schema
    out = {}
    for i, a in enumerate(schema.arguments):
        if i < len(args) and not a.kwarg_only:
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
        else:
            out[a.name] = None
    return out


def _tensor_constant(new, fxn, value) -> Node:
    """A tensor made in forward() from a number (`torch.min(x, torch.tensor(0.5))`) is a constant
    the trace holds for real: one value, a 0-d fill like `torch.full`. A constant with more
    elements would have to be stored beside the kernel; it is refused by name."""
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or value.is_meta:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Unsupported(f"unsupported: a tensor constant made in forward() ({shape}); "
                          "only a single number (torch.tensor(0.5)) can be inlined")
    number = value.item()
    return new(_ident(fxn.name), "full", ir.CONST, [number], {"value": number}, value)


def _sizes_of_input(reduction: Node) -> None:
    """A reduction's kept sizes written as its input's. The trace may write one size two ways
    (`((s - 8) // 2 + 1 - 3) // 3 + 1` after two pools, `(s // 2 + t) // 3 - 1` for their sum over
    channels), and kernels find a reduction's rows by comparing the sizes' text."""
    x = reduction.inputs[0]
    dims, keep = set(reduction.attrs["dims"]), reduction.attrs.get("keepdim", False)
    kept = [("1", 1) if d in dims else (size, hint)
            for d, (size, hint) in enumerate(zip(x.shape, x.hint)) if keep or d not in dims]
    if [hint for _, hint in kept] == list(reduction.hint):
        reduction.shape = tuple(size for size, _ in kept)


def _to_ir(gm: torch.fx.GraphModule, state_names, arg_names) -> ir.Graph:
    env: dict = {}  # fx node -> Node | Sym | tuple
    nodes: list[Node] = []
    inputs: list[Node] = []
    symbols: dict[str, tuple[int, int]] = {}
    names = list(state_names) + list(arg_names)

    # Only what the outputs need: in-place bookkeeping (running stats, counters) is dropped.
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    live = set()
    stack = list(out_node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n in live:
            continue
        live.add(n)
        stack.extend(n.all_input_nodes)

    def meta(n):
        v = n.meta.get("val")
        return v

    def new(name, op, kind, args, attrs, val, target=None):
        node = Node(name=name, op=op, kind=kind, args=args, attrs=attrs,
                    shape=tuple(_size_str(s) for s in val.shape),
                    hint=tuple(_hint(s) for s in val.shape), dtype=val.dtype, target=target)
        nodes.append(node)
        return node

    def lookup(a):
        if isinstance(a, torch.fx.Node):
            return env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(lookup(x) for x in a)
        return _sym(a)

    placeholder_i = 0
    for fxn in gm.graph.nodes:
        if fxn.op == "placeholder":
            val = meta(fxn)
            name = names[placeholder_i] if placeholder_i < len(names) else fxn.name
            node = new(_ident(name), "input", ir.INPUT, [], {"position": placeholder_i, "state": placeholder_i < len(state_names)}, val)
            inputs.append(node)
            env[fxn] = node
            placeholder_i += 1
            continue
        if fxn.op == "output":
            continue
        if fxn not in live:
            continue
        if fxn.op == "get_attr":
            env[fxn] = _tensor_constant(new, fxn, getattr(gm, fxn.target))
            continue
        target = fxn.target
        val = meta(fxn)
        if target is operator.getitem:
            src = env[fxn.args[0]]
            idx = fxn.args[1]
            if isinstance(src, tuple):
                env[fxn] = src[idx]
            elif isinstance(src, Node) and idx == 0:
                env[fxn] = src
            else:
                raise Unsupported(f"unsupported: output {idx} of {src.op if isinstance(src, Node) else src}")
            continue
        if not isinstance(val, torch.Tensor) and not (isinstance(val, (tuple, list)) and val and isinstance(val[0], torch.Tensor)):
            # host arithmetic on sizes (sym_size, s0*s1, sym_float): keep the symbolic value
            if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)):
                env[fxn] = _sym(val)
                continue
            raise Unsupported(f"unsupported: {target}")
        if not isinstance(target, torch._ops.OpOverload):
            raise Unsupported(f"unsupported: {target}")
        op = _packet_name(target)
        ns = target.namespace
        inplace = op.endswith("_") and not op.startswith("_") and op[:-1] in POINTWISE_OPS
        if inplace:  # x.clamp_min_(0) on a temporary: compute it functionally, later reads of x see it
            op = op[:-1]
        b = bind(target, fxn.args, fxn.kwargs)
        b = {k: lookup(v) for k, v in b.items()}
        name = _ident(fxn.name)
        tensor_val = val if isinstance(val, torch.Tensor) else val[0]
        converted = _convert(new, name, op, ns, target, b, tensor_val, fxn)
        for node in converted if isinstance(converted, tuple) else (converted,):
            if isinstance(node, Node) and node.kind == ir.REDUCTION:
                _sizes_of_input(node)
        env[fxn] = converted
        if inplace and isinstance(fxn.args[0], torch.fx.Node):
            env[fxn.args[0]] = env[fxn]
    # sizes are read from forward()'s arguments first, then from parameters and buffers
    order = [n for n in inputs if not n.attrs["state"]] + [n for n in inputs if n.attrs["state"]]
    for node in order:
        fxn = next(f for f, v in env.items() if v is node)
        val = meta(fxn)
        for d, s in enumerate(val.shape):
            if isinstance(s, torch.SymInt):
                txt = _size_str(s)
                if txt.isidentifier() and txt not in symbols:
                    symbols[txt] = (node.attrs["position"], d)
    outs = []
    for o in out_node.args[0] if isinstance(out_node.args[0], (list, tuple)) else [out_node.args[0]]:
        outs.append(env[o] if isinstance(o, torch.fx.Node) else o)
    g = ir.Graph(nodes=nodes, inputs=inputs, outputs=outs, state_names=list(state_names),
                 arg_names=list(arg_names), symbols=symbols, returns_tuple=isinstance(out_node.args[0], (list, tuple)))
    return g
