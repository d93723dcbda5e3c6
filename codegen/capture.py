"""Capture a KernelBench task's `Model.forward` as an ATen-level `ir.Graph`.

    cap = capture(task_source)
    cap.graph      # ir.Graph: nodes classified (pointwise / reduction / scan / view / pool / extern)
    cap.fx         # the traced torch.fx.GraphModule (ATen ops after decomposition)
    cap.module     # the reference Model instance, cap.example_inputs the forward() inputs

How: the task source is executed in a fresh namespace (the caller runs us in a sandboxed worker),
`Model(*get_init_inputs())` is built, and `make_fx` traces `functional_call(model, state, inputs)`
with symbolic sizes and a decomposition table that breaks composite ops (softmax, norms, losses,
activations) down to pointwise math and plain reductions. Parameters and buffers are graph inputs,
so the generated ModelNew passes `self.weight` etc. and keeps the reference's state_dict keys.

Anything the IR has no place for raises `Unsupported("unsupported: aten.<op>")`.
"""
from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass

import torch
from torch import nn

from . import ir, pointwise
from .ir import Node, Sym, Unsupported
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

# Ops kept whole and handed to codegen.extern (cuBLAS-class work).
EXTERN_OPS = {
    "mm", "bmm", "addmm", "baddbmm", "mv", "dot", "convolution", "_convolution", "matmul",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention",
    "_scaled_dot_product_cudnn_attention", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "einsum", "tensordot", "linear", "triu", "tril", "diag", "diag_embed",
    "diagonal",
}

POINTWISE_OPS = pointwise.OPS
REDUCTION_OPS = {"sum", "amax", "amin", "prod", "argmax", "argmin", "max", "min", "any", "all",
                 "var", "mean"}
SCAN_OPS = {"cumsum", "cumprod"}
VIEW_OPS = {"view", "_unsafe_view", "reshape", "squeeze", "unsqueeze", "permute", "expand",
            "slice", "select", "flip", "cat", "constant_pad_nd", "as_strided", "broadcast_in_dim",
            "gather", "transpose", "t", "unflatten", "flatten", "roll", "repeat", "narrow",
            "index_select", "split_with_sizes", "split", "unbind", "stack", "index"}
POOL_OPS = {"max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool2d", "avg_pool3d",
            "max_pool1d_with_indices"}
CONST_OPS = {"full", "scalar_tensor", "zeros", "ones", "full_like", "zeros_like", "ones_like",
             "arange", "iota"}


def decomposition_table() -> dict:
    from torch._decomp import core_aten_decompositions, get_decompositions

    table = dict(core_aten_decompositions())
    table.update(get_decompositions([op for op in _EXTRA_DECOMPS]))
    for op in list(table):  # keep the ops codegen.extern lowers whole
        if _packet_name(op) in EXTERN_OPS and _packet_name(op) not in ("matmul", "linear", "einsum", "tensordot", "triu", "tril", "diag", "diag_embed", "diagonal"):
            del table[op]
    return table


def _packet_name(target) -> str:
    name = getattr(target, "__name__", str(target))  # "add.Tensor"
    return name.split(".")[0]


@dataclass
class Capture:
    graph: ir.Graph
    fx: torch.fx.GraphModule
    module: nn.Module
    example_inputs: list
    namespace: dict  # the task module's globals (Model, get_inputs, get_init_inputs, constants)
    init_inputs: list
    forward_params: list[str]
    calls: list[str]  # the outermost torch functions forward() called, in order (names kernels)


def load_task(task_source: str) -> dict:
    """Execute a task file in a fresh namespace and return it."""
    ns: dict = {"__name__": "akg_task"}
    exec(compile(task_source, "<task>", "exec"), ns)
    for name in ("Model", "get_inputs", "get_init_inputs"):
        if name not in ns:
            raise Unsupported(f"task defines no {name}")
    return ns


def capture(task_source: str, *, namespace: dict | None = None) -> Capture:
    ns = namespace or load_task(task_source)
    torch.manual_seed(0)
    init_inputs = list(ns["get_init_inputs"]())
    # eval mode, as the harness runs both models (a task wanting batch statistics says training=True)
    model = ns["Model"](*init_inputs).eval()
    inputs = list(ns["get_inputs"]())
    fwd_params = [p for p in inspect.signature(model.forward).parameters]
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    state_names = list(state)
    n_state = len(state_names)

    recorder = CallRecorder()

    def run(*flat):
        sd = dict(zip(state_names, flat[:n_state]))
        with recorder:
            return torch.func.functional_call(model, sd, tuple(flat[n_state:]))

    flat = list(state.values()) + inputs
    if not all(isinstance(t, torch.Tensor) for t in flat):
        raise Unsupported("unsupported: non-tensor forward() input")
    from torch.fx.experimental.proxy_tensor import make_fx

    import torch.fx.experimental._config as fx_config

    try:
        # no duck shaping: two dims equal at these sizes (HEIGHT == WIDTH) may differ at others
        with fx_config.patch(use_duck_shape=False):
            gm = make_fx(run, decomposition_table=decomposition_table(), tracing_mode="symbolic")(*flat)
    except Unsupported:
        raise
    except Exception as e:  # data-dependent control flow and the like
        raise Unsupported(f"unsupported: could not trace Model.forward ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
    arg_names = fwd_params[: len(inputs)] if len(fwd_params) >= len(inputs) else [f"x{i}" for i in range(len(inputs))]
    graph = _to_ir(gm, state_names, arg_names)
    return Capture(graph, gm, model, inputs, ns, init_inputs, fwd_params, recorder.calls)


# ---------------------------------------------------------------------------------------------
# fx -> IR


def _printer():
    from torch.utils._sympy.printers import PythonPrinter

    return PythonPrinter()


def _size_str(s) -> str:
    if isinstance(s, int):
        return str(s)
    if isinstance(s, torch.SymInt):
        expr = s.node.expr
        try:
            return str(int(expr))
        except TypeError:
            return _printer().doprint(expr)
    return str(s)


def _hint(s):
    if isinstance(s, (torch.SymInt, torch.SymFloat)):
        return s.node.hint if s.node.hint is not None else s.node.expr
    return s


def _sym(v):
    """A SymInt/SymFloat -> Sym (host expression); plain numbers pass through."""
    if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        expr = v.node.expr
        try:
            return int(expr) if isinstance(v, torch.SymInt) else float(expr)
        except (TypeError, ValueError):
            pass
        text = _printer().doprint(expr)
        if isinstance(v, torch.SymFloat):
            text = text.replace("torch.sym_float(", "float(")
        return Sym(text, _hint(v))
    return v


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


def _norm_dims(dims, rank):
    if dims is None:
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    dims = [d % rank if rank else 0 for d in dims]
    return sorted(set(dims)) if dims else list(range(rank))


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
        env[fxn] = _convert(new, name, op, ns, target, b, tensor_val, fxn)
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


def _ident(name: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return name if name and not name[0].isdigit() else "t_" + name


def _convert(new, name, op, ns, target, b, val, fxn):
    """One ATen call -> one IR node (attrs normalised)."""
    first = next(iter(b.values()), None)
    rank = val.dim()
    if op in EXTERN_OPS:
        return new(name, op, ir.EXTERN, list(b.values()), dict(b), val, target)
    if op in CONST_OPS:
        if op == "arange" or op == "iota":
            return new(name, "arange", ir.CONST, [], {"start": b.get("start", 0) or 0, "step": b.get("step", 1) or 1}, val, target)
        fill = {"zeros": 0, "zeros_like": 0, "ones": 1, "ones_like": 1}.get(op)
        if fill is None:
            fill = b.get("fill_value", b.get("s"))
        return new(name, "full", ir.CONST, [fill], {"value": fill}, val, target)
    if op in POINTWISE_OPS:
        return new(name, op, ir.POINTWISE, list(b.values()), dict(b), val, target)
    if op in REDUCTION_OPS:
        x = b.get("self", b.get("inp", b.get("a", first)))
        xr = len(x.shape)
        dims = b.get("dim", b.get("dims"))
        if op in ("argmax", "argmin") and dims is None:
            dims_l = list(range(xr))
        else:
            dims_l = _norm_dims(dims if dims != [] else None, xr)
        keep = bool(b.get("keepdim", False))
        if ns == "prims":
            keep = False
        if op in ("max", "min"):
            op = "amax" if op == "max" else "amin"
            if isinstance(fxn.meta.get("val"), (tuple, list)):  # max.dim -> (values, indices)
                v = new(name, op, ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
                i = new(name + "_idx", "argmax" if op == "amax" else "argmin", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, fxn.meta["val"][1], target)
                return (v, i)
        if op == "var":
            corr = b.get("correction", 1)
            if corr is None:
                corr = 1 if b.get("unbiased", True) is not False else 0
            return new(name, "var", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep, "correction": float(corr)}, val, target)
        if op == "mean":
            return new(name, "mean", ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
        if op in ("argmax", "argmin") and len(dims_l) != 1 and xr > 1:
            flat_node = new(name + "_flat", "view", ir.VIEW, [x], {"shape": ("*".join(f"({s})" for s in x.shape),)},
                            torch.empty([x.numel_hint], dtype=x.dtype, device="meta"))
            flat_node.shape = ("*".join(f"({s})" for s in x.shape),)
            flat_node.attrs["shape"] = flat_node.shape
            return new(name, op, ir.REDUCTION, [flat_node], {"dims": [0], "keepdim": False}, val, target)
        return new(name, op, ir.REDUCTION, [x], {"dims": dims_l, "keepdim": keep}, val, target)
    if op in SCAN_OPS:
        x = b["self"]
        return new(name, op, ir.SCAN, [x], {"dim": b["dim"] % max(1, len(x.shape))}, val, target)
    if op in POOL_OPS:
        x = b["self"]
        nd = {"1d": 1, "2d": 2, "3d": 3}[op.split("_")[1][-2:] if "with" in op else op[-2:]]
        k = list(b["kernel_size"]) * (nd if len(b["kernel_size"]) == 1 else 1)
        stride = list(b.get("stride") or k)
        stride = stride * (nd if len(stride) == 1 else 1)
        pad = list(b.get("padding") or [0]) * 1
        pad = pad * (nd if len(pad) == 1 else 1)
        dil = list(b.get("dilation") or [1])
        dil = dil * (nd if len(dil) == 1 else 1)
        if b.get("ceil_mode"):
            pass  # output size already in val.shape; windows past the edge are masked
        attrs = {"nd": nd, "kernel": k, "stride": stride, "padding": pad, "dilation": dil,
                 "mode": "max" if op.startswith("max") else "avg",
                 "count_include_pad": bool(b.get("count_include_pad", True)),
                 "divisor_override": b.get("divisor_override")}
        attrs["ceil_mode"] = bool(b.get("ceil_mode"))
        node = new(name, "pool", ir.POOL, [x], attrs, val, target)
        shape = pool_out_shape(x.shape, attrs)
        if shape is not None:
            node.shape = shape
        return node
    if op in VIEW_OPS:
        return _convert_view(new, name, op, ns, target, b, val)
    raise Unsupported(f"unsupported: {ns}.{op}")


def pool_out_shape(x_shape, attrs) -> tuple | None:
    """A pooling output's size as a formula of the input's (floor mode), not a traced constant."""
    if attrs.get("ceil_mode"):
        return None
    nd = attrs["nd"]
    shape = list(x_shape[: len(x_shape) - nd])
    for j in range(nd):
        size = x_shape[len(x_shape) - nd + j]
        k, st, p, d = attrs["kernel"][j], attrs["stride"][j], attrs["padding"][j], attrs["dilation"][j]
        extra = 2 * p - d * (k - 1) - 1
        if size.isdigit():
            shape.append(str((int(size) + extra) // st + 1))
        else:
            span = f"{size} + {extra}" if extra >= 0 else f"{size} - {-extra}"
            shape.append(f"({span}) // {st} + 1" if st != 1 else f"{span} + 1")
    return tuple(shape)


def _convert_view(new, name, op, ns, target, b, val):
    x = b.get("self", b.get("a", b.get("input")))
    if op in ("view", "_unsafe_view", "reshape", "as_strided", "unflatten", "flatten"):
        if op == "as_strided":
            size = [_size_str(s) if not isinstance(s, Sym) else s.expr for s in b["size"]]
            node = new(name, "view", ir.VIEW, [x], {}, val, target)
            # only the contiguous form (a reshape) is index math we can do without strides
            stride = b["stride"]
            expect = 1
            ok = True
            for s, st in zip(reversed(list(val.shape)), reversed(list(stride))):
                if _size_str(s) != "1" and str(_sym(st)) != str(_sym(expect)):
                    ok = False
                expect = expect * s
            if not ok or b.get("storage_offset"):
                raise Unsupported("unsupported: aten.as_strided (non-contiguous)")
            node.attrs["shape"] = node.shape
            return node
        node = new(name, "view", ir.VIEW, [x], {}, val, target)
        node.attrs["shape"] = node.shape
        return node
    if op == "broadcast_in_dim":
        return new(name, "broadcast_in_dim", ir.VIEW, [x], {"dims": list(b["broadcast_dimensions"])}, val, target)
    if op == "squeeze" or op == "unsqueeze":
        node = new(name, "view", ir.VIEW, [x], {}, val, target)
        node.attrs["shape"] = node.shape
        node.attrs["squeeze"] = True
        return node
    if op == "permute":
        return new(name, "permute", ir.VIEW, [x], {"dims": [d % len(x.shape) for d in b["dims"]]}, val, target)
    if op in ("transpose", "t"):
        r = len(x.shape)
        d0, d1 = (b.get("dim0", 0) % max(r, 1), b.get("dim1", 1) % max(r, 1)) if op == "transpose" else (0, 1 if r > 1 else 0)
        perm = list(range(r))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return new(name, "permute", ir.VIEW, [x], {"dims": perm}, val, target)
    if op == "expand":
        return new(name, "expand", ir.VIEW, [x], {}, val, target)
    if op == "slice":
        dim = b["dim"] % len(x.shape)
        start = b.get("start") or 0
        step = b.get("step") or 1
        if isinstance(start, int) and start < 0:
            start = Sym(f"({x.shape[dim]}) + ({start})", x.hint[dim] + start)
        return new(name, "slice", ir.VIEW, [x], {"dim": dim, "start": start, "step": step}, val, target)
    if op == "narrow":
        dim = b["dim"] % len(x.shape)
        return new(name, "slice", ir.VIEW, [x], {"dim": dim, "start": b["start"], "step": 1}, val, target)
    if op == "select":
        dim = b["dim"] % len(x.shape)
        index = b["index"]
        if isinstance(index, int) and index < 0:
            index = Sym(f"({x.shape[dim]}) + ({index})", x.hint[dim] + index)
        return new(name, "select", ir.VIEW, [x], {"dim": dim, "index": index}, val, target)
    if op == "flip":
        return new(name, "flip", ir.VIEW, [x], {"dims": [d % len(x.shape) for d in b["dims"]]}, val, target)
    if op == "cat":
        parts = [t for t in b["tensors"] if not (len(t.shape) == 1 and t.shape[0] == "0")]
        dim = b["dim"] % len(val.shape)
        return new(name, "cat", ir.VIEW, parts, {"dim": dim}, val, target)
    if op == "constant_pad_nd":
        return new(name, "pad", ir.VIEW, [x], {"pad": list(b["pad"]), "value": b.get("value", 0) or 0}, val, target)
    if op == "gather":
        return new(name, "gather", ir.VIEW, [x, b["index"]], {"dim": b["dim"] % max(1, len(x.shape))}, val, target)
    if op == "index_select":
        return new(name, "index_select", ir.VIEW, [x, b["index"]], {"dim": b["dim"] % len(x.shape)}, val, target)
    raise Unsupported(f"unsupported: {ns}.{op}")
