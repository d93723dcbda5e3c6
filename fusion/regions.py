"""Fusable regions of a captured graph, what each moves through memory, and what it is.

A region is a connected set of pointwise ops, reductions and views between heavy ops (matmuls,
attention, convolutions, embeddings). Regions never cross the boundary between repeated blocks
(`layers.0` / `layers.1`): a tensor shared by every layer, such as the rotary tables, is an input
of each layer's region rather than glue that welds all layers into one region. A lone pointwise
op right after a matmul is kept too, together with that matmul: a matmul epilogue.

Bytes are counted as eager PyTorch runs the ops (each op reads its inputs and writes its output
through memory; views are free) against one fused kernel (the region's inputs read once, its
outputs written once).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from fusion.capture import Capture, Node, Ref
from fusion.ops import short_name, tensor_bytes

FUSABLE = {"pointwise", "reduction", "view"}
# Views that pick part of a tensor stay inside: their arguments are written relative to the
# tensor's shape, and the region reads the whole tensor once instead of each part.
KEEP_VIEWS = {"slice", "select", "narrow", "split", "chunk", "unbind"}
FLOAT_DTYPES = {"float32", "float16", "bfloat16", "float64"}


@dataclass
class Region:
    nodes: list[int]  # node ids, in execution order
    inputs: list[Ref]  # tensors read from outside, in first-use order
    outputs: list[Ref]  # tensors used outside (or returned by the model)
    bytes_unfused: int = 0
    bytes_fused: int = 0
    pattern: str = ""  # op name stem: rmsnorm, swiglu, add_rmsnorm, rotary_embedding ...
    label: str = ""  # for people: "RMSNorm", "SwiGLU / gated MLP activation" ...
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_saved(self) -> int:
        return self.bytes_unfused - self.bytes_fused


def block_of(module: str) -> str:
    """The repeated block a module belongs to: 'model.layers.3.mlp' → 'model.layers.3'."""
    match = re.match(r"^(.*?\.\d+)(\.|$)", module)
    return match.group(1) if match else ""


def _users(capture: Capture) -> dict[tuple[int, int], list[int]]:
    users: dict[tuple[int, int], list[int]] = {}
    for node in capture.nodes:
        for ref in node.inputs():
            users.setdefault((ref.node, ref.index), []).append(node.id)
    return users


def _group(nodes: list[Node]) -> dict[int, list[int]]:
    """Each fusable node joins the group of its first fusable producer in the same block, unless
    another of its inputs depends on that group through an op outside it (joining would make the
    region wait on its own output, e.g. the residual add after the MLP fed by the norm)."""
    label: dict[int, int] = {}
    ancestors: dict[int, frozenset[int]] = {}
    groups: dict[int, list[int]] = {}
    for node in nodes:
        refs = node.inputs()
        seen: set[int] = set()
        for ref in refs:
            seen |= ancestors.get(ref.node, frozenset())
            if ref.node in label:
                seen.add(label[ref.node])
        ancestors[node.id] = frozenset(seen)
        if node.kind != "compute" or node.category not in FUSABLE:
            continue
        chosen = None
        for ref in refs:
            group = label.get(ref.node)
            if group is None or block_of(nodes[ref.node].module) != block_of(node.module):
                continue
            reaches = any(group in ancestors.get(other.node, frozenset())
                          for other in refs if label.get(other.node) != group)
            if not reaches:
                chosen = group
                break
        if chosen is None:
            chosen = node.id
            groups[chosen] = []
        label[node.id] = chosen
        groups[chosen].append(node.id)
    return groups


def find_regions(capture: Capture) -> list[Region]:
    nodes = capture.nodes
    groups = _group(nodes)
    users = _users(capture)
    regions = []
    for members in groups.values():
        members = _strip_boundary_views(nodes, set(members), users)
        if not members:
            continue
        compute = [i for i in members if nodes[i].category != "view"]
        if not any(d in FLOAT_DTYPES for i in compute for d in nodes[i].dtypes):
            continue  # index arithmetic (positions, masks): nothing worth a kernel
        if len(compute) == 1:
            members = _with_producing_matmul(nodes, members)
            if members is None:
                continue
        region = _close(nodes, sorted(members), users)
        classify(nodes, region)
        if region.bytes_saved > 0:
            regions.append(region)
    return regions + _shared_input_matmuls(nodes, users)


def _chase_views(nodes: list[Node], ref: Ref) -> tuple[Ref, list[int]]:
    """The tensor under a chain of views, and the views' ids."""
    chain = []
    while nodes[ref.node].kind == "compute" and nodes[ref.node].category == "view" and nodes[ref.node].inputs():
        chain.append(ref.node)
        ref = nodes[ref.node].inputs()[0]
    return ref, chain


def _shared_input_matmuls(nodes: list[Node], users) -> list[Region]:
    """Projections of one activation by several weights (Q, K and V of attention): one GEMM over
    the concatenated weights reads the activation once instead of once per projection."""
    by_input: dict[tuple, list[list[int]]] = {}
    for node in nodes:
        op = short_name(node.op)
        if node.kind != "compute" or op not in ("mm", "addmm"):
            continue
        activation, weight = (node.args[1], node.args[2]) if op == "addmm" else (node.args[0], node.args[1])
        if not isinstance(activation, Ref) or not isinstance(weight, Ref):
            continue
        base, views = _chase_views(nodes, activation)
        weight_base, weight_views = _chase_views(nodes, weight)
        if nodes[weight_base.node].kind != "param":
            continue
        key = (base.node, base.index, block_of(node.module))
        by_input.setdefault(key, []).append([node.id, *views, *weight_views])
    regions = []
    for groups in by_input.values():
        if len(groups) < 2:
            continue
        region = _close(nodes, sorted({i for group in groups for i in group}), users)
        projections = [nodes[g[0]].module.rsplit(".", 1)[-1] for g in groups]
        if len(groups) == 3 and all(re.search(r"(^|_)[qkv](_|$)|[qkv]_proj", p) for p in projections):
            region.pattern, region.label = "qkv_merge", "QKV merge: one GEMM for the Q, K, V projections"
        else:
            region.pattern, region.label = "merged_matmul", f"one GEMM for {', '.join(projections)} (shared input)"
        if region.bytes_saved > 0:
            regions.append(region)
    return regions


def _strip_boundary_views(nodes: list[Node], members: set[int], users) -> list[int]:
    """Views at the edges cost nothing and only tie the region to its neighbours' layouts: a view
    of an outside tensor becomes a region input, and a view whose result only leaves the region
    is left to the consumer (the region outputs the tensor before it)."""
    changed = True
    while changed and members:
        changed = False
        for i in sorted(members):
            node = nodes[i]
            if node.category != "view" or short_name(node.op) in KEEP_VIEWS:
                continue
            from_outside = all(r.node not in members for r in node.inputs())
            used_inside = any(u in members for k in range(len(node.shapes)) for u in users.get((i, k), []))
            if from_outside or not used_inside:
                members.discard(i)
                changed = True
    return sorted(members)


def _with_producing_matmul(nodes: list[Node], members: list[int]) -> list[int] | None:
    """A single op is worth fusing only into the matmul that produced its input: add that matmul
    (and the views between) to the region."""
    op_id = next(i for i in members if nodes[i].category != "view")
    for ref in nodes[op_id].inputs():
        chain, current = [], nodes[ref.node]
        while current.kind == "compute" and current.category == "view" and current.inputs():
            chain.append(current.id)
            current = nodes[current.inputs()[0].node]
        if current.kind == "compute" and current.category == "heavy" and short_name(current.op) in ("mm", "addmm", "bmm"):
            return sorted({*members, *chain, current.id})
    return None


def _close(nodes: list[Node], members: list[int], users) -> Region:
    inside = set(members)
    inputs: list[Ref] = []
    outputs: list[Ref] = []
    unfused = 0
    for i in members:
        node = nodes[i]
        for ref in node.inputs():
            if ref.node not in inside and all((r.node, r.index) != (ref.node, ref.index) for r in inputs):
                inputs.append(Ref(ref.node, ref.index))
        if node.category != "view":
            unfused += sum(tensor_bytes(nodes[r.node].shapes[r.index], nodes[r.node].dtypes[r.index])
                           for r in node.inputs())
            unfused += sum(tensor_bytes(s, d) for s, d in zip(node.shapes, node.dtypes))
        for k in range(len(node.shapes)):
            consumers = users.get((i, k), [])
            if not consumers or any(u not in inside for u in consumers):
                outputs.append(Ref(i, k))
    # A node output nobody reads is a model output only if it is the last op's result; other
    # unread outputs (e.g. softmax statistics) are not written by a fused kernel.
    outputs = [r for r in outputs if users.get((r.node, r.index)) or r.node == members[-1]]
    fused = sum(tensor_bytes(nodes[r.node].shapes[r.index], nodes[r.node].dtypes[r.index]) for r in inputs)
    fused += sum(tensor_bytes(nodes[r.node].shapes[r.index], nodes[r.node].dtypes[r.index]) for r in outputs)
    return Region(nodes=members, inputs=inputs, outputs=outputs, bytes_unfused=unfused, bytes_fused=fused)


PATTERNS = [  # (pattern, label, ops that must all appear)
    ("gelu_tanh", "GELU (tanh approximation)", {"tanh", "pow", "mul", "add"}),
    ("rotary_embedding", "rotary embedding", {"neg", "cat", "mul", "add"}),
    ("rotary_tables", "rotary cos/sin tables", {"cos", "sin"}),
    ("rmsnorm", "RMSNorm", {"mean", "rsqrt"}),
    ("layernorm", "LayerNorm", {"native_layer_norm"}),
    ("layernorm", "LayerNorm", {"var_mean", "rsqrt"}),
    ("softmax", "softmax", {"_softmax"}),
    ("swiglu", "SwiGLU / gated MLP activation", {"silu", "mul"}),
    ("geglu", "GeGLU / gated MLP activation", {"gelu", "mul"}),
]


def classify(nodes: list[Node], region: Region) -> None:
    ops = [short_name(nodes[i].op) for i in region.nodes if nodes[i].category != "view"]
    present = set(ops)
    heavy = [i for i in region.nodes if nodes[i].category == "heavy"]
    if heavy:
        op = next(o for o in ops if o not in ("mm", "addmm", "bmm"))
        region.pattern, region.label = f"matmul_{op}", f"matmul + {op} epilogue"
        return
    for pattern, label, needs in PATTERNS:
        if needs <= present:
            region.pattern, region.label = pattern, label
            break
    else:
        distinct = list(dict.fromkeys(o.lstrip("_") for o in ops))
        region.pattern = "fused_" + "_".join(distinct[:3])
        region.label = "pointwise/reduction chain: " + ", ".join(distinct)
    # A residual add in front of a norm: its sum is both normalised and kept for the next add.
    first = nodes[region.nodes[0]]
    if region.pattern in ("rmsnorm", "layernorm") and short_name(first.op) == "add" \
            and any(r.node == first.id for r in region.outputs):
        region.pattern, region.label = f"add_{region.pattern}", f"residual add + {region.label}"
