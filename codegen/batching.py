"""Calls at other ranks than the traced one: leading (batch) dims folded into one, or a clear error.

A user's model calls a module with whatever leading dims it has: a LayerNorm lowered for (8, 512)
is called with (3, 7, 512), a relu lowered for (128, 4096) with a 1-D tensor. The kernels are
generated for the traced rank (sizes are read at run time, ranks are not), so `ModelNew.forward`
views each input with its leading dims folded into one, runs the kernels, and unfolds the result.

Which trailing dims a call must keep (the "core": none for a relu, the normalised dim for a layer
norm, three for a 2-D convolution's unbatched input) is found by running the reference itself on
small inputs: folding must give exactly what the reference gives, at one rank above and one below
the traced one. Where no core passes (softmax over dim 1, a sum over dim 1, inputs of different
ranks), a call at another rank raises a ValueError that says what the file serves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Probes are run on the CPU at the traced core sizes: skip cores too large to probe quickly.
MAX_PROBE_ELEMENTS = 1 << 20
# Probing runs the reference itself, with its parameters and buffers real: a model whose state is
# larger than this is not probed (it serves its traced rank only) rather than allocated.
MAX_PROBE_STATE_BYTES = 256 << 20


@dataclass(frozen=True)
class BatchRule:
    """How ModelNew.forward serves a call. `core` is None when only the traced rank is served."""

    ranks: tuple[int, ...]  # each tensor input's traced rank
    core: int | None        # trailing dims kept as they are; the rest fold into one
    args: tuple[str, ...]   # forward()'s tensor arguments, in order
    returns_tuple: bool = False  # forward() returns a tuple of tensors


def _example_inputs(ns: dict) -> list | None:
    try:
        with torch.device("meta"):
            xs = list(ns["get_inputs"]())
    except Exception:
        return None
    return xs if xs and all(isinstance(x, torch.Tensor) for x in xs) else None


def _state_bytes(ns: dict) -> int | None:
    """The reference's parameter and buffer bytes, from a model built on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            model = ns["Model"](*ns["get_init_inputs"]())
    except Exception:
        return None
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _random(shape, like: torch.Tensor) -> torch.Tensor:
    if like.dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if like.dtype.is_floating_point:
        return torch.randn(shape, dtype=like.dtype)
    return torch.randint(0, 4, shape, dtype=like.dtype)


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _folding_matches(model, xs: list, core: int) -> bool | None:
    """Whether folding the leading dims of inputs shaped P + core gives the reference's result, for
    P one rank above and one rank below the traced leading dims. None: the reference accepts neither.
    True: it matches, and the reference returned a tensor; "tuple": it returned a tuple."""
    lead = xs[0].dim() - core
    accepted, returns_tuple = 0, False
    for batch in ((2, 3, 2)[: lead + 1], (5,) if lead > 1 else ()):
        inputs = [_random(tuple(batch) + tuple(x.shape[lead:]), x) for x in xs]
        folded_lead = (1,) * (lead - 1) + (math.prod(batch),)
        try:
            with torch.no_grad():
                result = model(*inputs)
        except Exception:
            continue  # the reference does not take this rank either
        want = _as_list(result)
        try:
            with torch.no_grad():
                got = _as_list(model(*[x.reshape(folded_lead + tuple(x.shape[len(batch):])) for x in inputs]))
        except Exception:
            return False
        if len(got) != len(want):
            return False
        for w, g in zip(want, got):
            if not isinstance(w, torch.Tensor) or not isinstance(g, torch.Tensor):
                return False
            if tuple(g.shape[:lead]) != folded_lead or tuple(w.shape) != tuple(batch) + tuple(g.shape[lead:]):
                return False
            if w.dtype != g.dtype or not torch.allclose(g.reshape(w.shape).double(), w.double(), rtol=1e-4,
                                                        atol=1e-5, equal_nan=True):
                return False
        accepted += 1
        returns_tuple = isinstance(result, (tuple, list))
    if not accepted:
        return None
    return "tuple" if returns_tuple else True


def batch_rule(ns: dict, arg_names: list[str]) -> BatchRule | None:
    """The rule for the task in namespace `ns` (its Model, get_inputs, get_init_inputs); None when
    forward() does not take exactly the task's tensor inputs."""
    xs = _example_inputs(ns)
    if xs is None or len(arg_names) != len(xs):
        return None
    rank = xs[0].dim()
    names, ranks = tuple(arg_names), tuple(x.dim() for x in xs)
    if rank == 0 or any(r != rank for r in ranks):
        return BatchRule(ranks, None, names)
    state = _state_bytes(ns)
    if state is not None and state > MAX_PROBE_STATE_BYTES:  # None: built for real below
        return BatchRule(ranks, None, names)
    try:
        torch.manual_seed(0)
        model = ns["Model"](*ns["get_init_inputs"]()).eval()
    except Exception:
        return BatchRule(ranks, None, names)
    with torch.random.fork_rng():
        for core in range(rank):
            lead = rank - core
            if any(tuple(x.shape[:lead]) != tuple(xs[0].shape[:lead]) for x in xs):
                break  # inputs of different leading sizes: broadcasting, not batching
            if 6 * sum(math.prod(x.shape[lead:]) for x in xs) > MAX_PROBE_ELEMENTS:
                continue
            torch.manual_seed(0)
            matches = _folding_matches(model, xs, core)
            if matches:
                return BatchRule(ranks, core, names, returns_tuple=matches == "tuple")
    return BatchRule(ranks, None, names)


# ---------------------------------------------------------------------------------------------
# rendering: ModelNew.forward becomes a wrapper around the traced-rank forward (run_kernels)


def _forward_source(rule: BatchRule) -> str:
    args = ", ".join(rule.args)
    x = rule.args[0]
    same_rank = " and ".join(f"{a}.dim() == {r}" for a, r in zip(rule.args, rule.ranks))
    traced = ", ".join(map(str, rule.ranks))
    lines = [f"    def forward(self, {args}):"]
    if rule.core is None:
        shapes = ", ".join(f"{{tuple({a}.shape)}}" for a in rule.args)
        lines += [f'        """The kernels serve inputs of the traced rank ({traced}) at any sizes."""',
                  f"        if not ({same_rank}):",
                  f'            raise ValueError(f"ModelNew serves inputs of rank {traced} only; got shapes {shapes}")',
                  f"        return self.run_kernels({args})"]
        return "\n".join(lines)
    core, lead = rule.core, rule.ranks[0] - rule.core
    batch = f"{x}.shape" if core == 0 else f"{x}.shape[:{x}.dim() - {core}]"
    lines += [f'        """Any leading dims: folded into one for the kernels (generated at rank {traced}), unfolded after."""',
              f"        if {same_rank}:",
              f"            return self.run_kernels({args})"]
    if core:
        lines += [f"        if {x}.dim() < {core}:",
                  f'            raise ValueError(f"ModelNew needs at least {core} dims; got shape {{tuple({x}.shape)}}")']
    lines.append(f"        batch = {batch}")
    for a in rule.args[1:]:
        lines += [f"        if {a}.shape[:{a}.dim() - {core}] != batch:",
                  f'            raise ValueError(f"{a} and {x} differ in their leading dims: {{tuple({a}.shape)}}, {{tuple({x}.shape)}}")']
    folded = ", ".join(["1"] * (lead - 1) + ["math.prod(batch)"])
    keep = "" if core == 0 else f", *{{0}}.shape[{{0}}.dim() - {core}:]"
    calls = ", ".join(f"{a}.reshape({folded}{keep.format(a)})" for a in rule.args)
    lines.append(f"        out = self.run_kernels({calls})")
    if rule.returns_tuple:
        lines.append(f"        return tuple(o.reshape((*batch, *o.shape[{lead}:])) for o in out)")
    else:
        lines.append(f"        return out.reshape((*batch, *out.shape[{lead}:]))")
    return "\n".join(lines)


def wrap_forward(code: str, rule: BatchRule | None) -> str:
    """The generated file with ModelNew.forward serving calls at any rank the rule allows (the
    file's own forward becomes `run_kernels`). ModelNew must be the file's last definition."""
    if rule is None:
        return code
    head, sep, model = code.rpartition("class ModelNew(nn.Module):")
    if not sep or model.count("\n    def forward(") != 1:
        return code
    model = model.replace("\n    def forward(", "\n    def run_kernels(", 1).rstrip("\n")
    if "import math\n" not in head:
        head = head.replace("import torch\n", "import math\n\nimport torch\n", 1)
    return head + sep + model + "\n\n" + _forward_source(rule) + "\n"
