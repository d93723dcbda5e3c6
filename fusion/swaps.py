"""How a realized region goes back into the model: which module's forward it replaces.

A region can be swapped in when it is the whole forward of a module (an RMSNorm: the region's
inputs are the forward's arguments and the module's parameters), or the whole forward of a
module apart from calls of its child modules that feed it or take its result (a gated MLP:
`down(kernel(gate(x), up(x)))`). The swap is an expression over `args[i]`, `self.<name>` and
`{kernel}`; `apply_fusions` and the source rewrite both use it, for every instance of the class.
"""
from __future__ import annotations

from fusion.capture import Capture, ModuleCall, Ref
from fusion.regions import Region


def _key(ref: Ref | None):
    return None if ref is None else (ref.node, ref.index)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + ".")


def _through_views(capture: Capture, ref: Ref) -> Ref:
    """The tensor a view chain starts from (a module's output is often a view of the result)."""
    node = capture.nodes[ref.node]
    while node.kind == "compute" and node.category == "view" and node.inputs():
        ref = node.inputs()[0]
        node = capture.nodes[ref.node]
    return ref


def swap_for(capture: Capture, region: Region) -> dict | None:
    compute = {i for i in region.nodes if capture.nodes[i].category != "view"}
    modules = [capture.nodes[i].module for i in compute]
    candidates = [c for c in capture.calls if c.path and all(_under(m, c.path) for m in modules)]
    for call in sorted(candidates, key=lambda c: -c.path.count(".")):  # the innermost first
        swap = _swap_in(capture, region, compute, call)
        if swap is not None:
            return swap
    return None


def _swap_in(capture: Capture, region: Region, compute: set[int], call: ModuleCall) -> dict | None:
    nodes = capture.nodes
    arg_of = {_key(r): i for i, r in enumerate(call.inputs) if r is not None}
    children = [c for c in capture.calls if c.path.startswith(call.path + ".")
                and "." not in c.path[len(call.path) + 1:] and call.first <= c.first and c.last <= call.last]
    used_children: list[ModuleCall] = []
    arguments = []
    for ref in region.inputs:
        source = nodes[ref.node]
        if _key(ref) in arg_of:
            arguments.append(f"args[{arg_of[_key(ref)]}]")
        elif source.kind == "param" and source.name.startswith(call.path + "."):
            arguments.append("self." + source.name[len(call.path) + 1:])
        else:
            child = next((c for c in children if any(_key(o) == _key(ref) for o in c.outputs)), None)
            if child is None or not child.inputs or any(_key(i) not in arg_of for i in child.inputs):
                return None
            used_children.append(child)
            inner = ", ".join(f"args[{arg_of[_key(i)]}]" for i in child.inputs)
            arguments.append(f"self.{child.path[len(call.path) + 1:]}({inner})")
    expression = "{kernel}(" + ", ".join(arguments) + ")"
    if len(region.outputs) != 1 or len(call.outputs) != 1 or call.outputs[0] is None:
        return None
    result = region.outputs[0]
    if _key(_through_views(capture, call.outputs[0])) != _key(result) and _key(call.outputs[0]) != _key(result):
        consumer = next((c for c in children if c.inputs and _key(c.inputs[0]) == _key(result)
                         and len(c.inputs) == 1 and c.outputs and _key(c.outputs[0]) == _key(call.outputs[0])), None)
        if consumer is None:
            return None
        used_children.append(consumer)
        expression = f"self.{consumer.path[len(call.path) + 1:]}({expression})"
    # Nothing else may happen in the forward: every op is the region's or a used child's.
    for node in nodes[call.first + 1: call.last + 1]:
        if node.kind != "compute" or node.category == "view" or node.id in compute:
            continue
        if not any(c.first < node.id <= c.last for c in used_children):
            return None
    return {"class": call.module_class, "module": call.path, "arity": len(call.inputs), "expression": expression}
