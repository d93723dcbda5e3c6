"""Phase 1 of fusion mode: capture the model, find its fusable regions, rank them by the bytes a
fused kernel saves per forward. `analyse` runs in a worker (it executes model code); what it
returns is plain JSON, turned into `Analysis` by the session."""
from __future__ import annotations

import os

from pydantic import BaseModel, Field

# Peak memory bandwidth (bytes/s) a saved byte is priced at. No GPU here: the H100's.
BANDWIDTH = {"h100": 3.35e12, "sm90": 3.35e12, "h200": 4.8e12, "a100": 2.04e12, "sm80": 2.04e12,
             "l40s": 0.864e12, "rtx4090": 1.008e12, "ascend910b1": 1.6e12, "ascend910b2": 1.6e12,
             "ascend910b3": 1.6e12, "ascend910b4": 0.8e12}


class TensorSpec(BaseModel):
    name: str
    shape: list[int]
    dtype: str


class Opportunity(BaseModel):
    rank: int = 0
    name: str  # the fused operator's name: its task file, kernel file and folder under fusions/
    pattern: str
    label: str
    ops: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    bytes_unfused: int
    bytes_fused: int
    bytes_saved: int  # per occurrence
    occurrences: int
    bytes_saved_total: int  # per forward of the whole model
    time_saved_us: float  # bytes_saved_total at the device's bandwidth
    modules: list[str]
    module_class: str = ""
    locations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    swap: dict | None = None  # how the kernel replaces a module's forward (see fusion.swaps)
    task_code: str


class Analysis(BaseModel):
    model: str  # qwen2, or the file's stem
    kind: str  # hf | file
    description: str
    source_file: str | None = None
    target: str | None = None
    inputs: list[TensorSpec]
    dtype: str
    layers_total: int | None = None
    layers_captured: int | None = None
    arch: str = "h100"
    bandwidth: float = BANDWIDTH["h100"]
    bandwidth_note: str = ""
    capture_error: str | None = None
    opportunities: list[Opportunity] = Field(default_factory=list)


# -- in the worker -------------------------------------------------------------------------------


def analyse(spec: dict, device: str = "cpu") -> dict:
    """Entry point for `harness.sandbox_call`: spec says which model (see nodes/fusion.py)."""
    from fusion.capture import capture

    dtype = spec.get("dtype") or "float32"
    if spec["kind"] == "hf":
        from fusion import models

        arch = spec["arch"]
        total = models.layer_count(models.hf_config(arch, overrides=spec.get("overrides")))
        captured = min(total, int(spec.get("layers") or 1))
        config = models.hf_config(arch, layers=captured, overrides=spec.get("overrides"))
        shape = (spec.get("shapes") or [list(models.DEFAULT_TOKENS)])[0]
        vocab = config.vocab_size
        result = capture(lambda: models.build_hf(arch, config, dtype),
                         lambda _m: [__import__("torch").randint(0, vocab, tuple(shape))],
                         forward_kwargs={"use_cache": False})
        widths = models.ARCHITECTURES[arch][3]
        description = (f"{models.DISPLAY[arch]} ({widths} widths: hidden {_hidden(config)}), {captured} of "
                       f"{total} layers captured at full width, random weights")
        inputs = [TensorSpec(name="input_ids", shape=list(shape), dtype="int64")]
        model_name, layers = arch, (total, captured)
    else:
        from fusion import models

        cls = models.load_target(spec["source_file"], spec.get("target"))
        init_args = spec.get("init_args") or []
        shapes = spec.get("shapes")
        result = capture(lambda: models.build_in_dtype(lambda: cls(*init_args), dtype),
                         lambda m: models.example_inputs(m, shapes, dtype))
        description = f"{cls.__name__} from {spec['source_file']}"
        inputs = [TensorSpec(name=f"input{i}", shape=list(s), dtype=dtype) for i, s in enumerate(shapes)]
        model_name = os.path.splitext(os.path.basename(spec["source_file"]))[0]
        layers = (None, None)
        spec = {**spec, "target": cls.__name__}
    opportunities = find_opportunities(result, layers_total=layers[0], layers_captured=layers[1])
    arch_name = spec.get("arch_params") or "h100"
    bandwidth = BANDWIDTH.get(arch_name, BANDWIDTH["h100"])
    note = (f"at {arch_name} bandwidth ({bandwidth / 1e12:.2f} TB/s)" if arch_name in BANDWIDTH
            else f"no GPU: priced at H100 bandwidth ({BANDWIDTH['h100'] / 1e12:.2f} TB/s)")
    for opp in opportunities:
        opp.time_saved_us = round(opp.bytes_saved_total / bandwidth * 1e6, 2)
    analysis = Analysis(model=model_name, kind=spec["kind"], description=description,
                        source_file=spec.get("source_file"), target=spec.get("target"), inputs=inputs,
                        dtype=dtype, layers_total=layers[0], layers_captured=layers[1],
                        arch=arch_name, bandwidth=bandwidth, bandwidth_note=note,
                        capture_error=result.error, opportunities=opportunities)
    return {"ok": True, "message": "analysed", "analysis": analysis.model_dump()}


def _hidden(config) -> int:
    return getattr(config, "hidden_size", None) or getattr(config, "n_embd", 0)


def find_opportunities(result, *, layers_total: int | None = None, layers_captured: int | None = None) -> list[Opportunity]:
    """Regions → opportunities: identical regions merged (counted as occurrences), regions of a
    captured layer counted once per layer of the full model, ranked by bytes saved per forward."""
    from fusion.ops import short_name
    from fusion.regions import block_of, find_regions
    from fusion.render import input_names, task_code
    from fusion.swaps import swap_for

    nodes = result.nodes
    merged: dict[str, Opportunity] = {}
    for region in find_regions(result):
        code = task_code(nodes, region, title=region.label, origin="")
        signature = code.split('"""', 2)[2]
        members = [nodes[i] for i in region.nodes if nodes[i].category != "view"]
        in_layer = layers_total and layers_captured and any(block_of(n.module) for n in members)
        count = (layers_total // layers_captured) if in_layer else 1
        module = members[0].module
        location = next((n.location for n in members if n.location), "")
        if signature in merged:
            opp = merged[signature]
            opp.occurrences += count
            opp.modules.append(module)
            if location and location not in opp.locations:
                opp.locations.append(location)
            continue
        names = input_names(nodes, region)
        notes = []
        heavy_in = {short_name(nodes[r.node].op) for r in region.inputs
                    if short_name(nodes[r.node].op) in ("mm", "addmm", "bmm", "baddbmm")}
        if heavy_in:
            notes.append(f"reads the result of {', '.join(sorted(heavy_in))} (a matmul epilogue candidate)")
        swap = swap_for(result, region)
        if swap is None:
            notes.append("spans module boundaries: realized as a kernel, not swapped into the model automatically")
        merged[signature] = Opportunity(
            name=region.pattern, pattern=region.pattern, label=region.label,
            ops=[short_name(n.op) for n in members],
            inputs=[TensorSpec(name=n, shape=nodes[r.node].shapes[r.index], dtype=nodes[r.node].dtypes[r.index])
                    for n, r in zip(names, region.inputs)],
            outputs=[TensorSpec(name=f"out{k}", shape=nodes[r.node].shapes[r.index], dtype=nodes[r.node].dtypes[r.index])
                     for k, r in enumerate(region.outputs)],
            bytes_unfused=region.bytes_unfused, bytes_fused=region.bytes_fused, bytes_saved=region.bytes_saved,
            occurrences=count, bytes_saved_total=0, time_saved_us=0.0, modules=[module],
            module_class=(swap or {}).get("class") or members[0].module_class,
            locations=[location] if location else [], notes=notes, swap=swap, task_code=code)
    ranked = sorted(merged.values(), key=lambda o: -o.bytes_saved * o.occurrences)
    taken: dict[str, int] = {}
    for rank, opp in enumerate(ranked, 1):
        opp.rank = rank
        opp.bytes_saved_total = opp.bytes_saved * opp.occurrences
        taken[opp.pattern] = taken.get(opp.pattern, 0) + 1
        if taken[opp.pattern] > 1:
            opp.name = f"{opp.pattern}_{taken[opp.pattern]}"
        where = ", ".join(opp.locations[:3]) or opp.modules[0]
        opp.task_code = opp.task_code.replace(
            '(fusion opportunity found by akg-op).\n\n\n',
            f"(fusion opportunity {opp.rank} found by akg-op).\n\n"
            f"Ops: {' → '.join(opp.ops)}\nFrom: {opp.modules[0]} ({where}); {opp.occurrences} occurrence(s) per forward.\n", 1)
    return ranked


# -- reading it ----------------------------------------------------------------------------------


def _mb(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def table(analysis: Analysis) -> str:
    lines = ["| # | opportunity | ops | shapes | unfused → fused (per call) | × | saved / forward | est. time saved | swap |",
             "|---|---|---|---|---|---|---|---|---|"]
    for o in analysis.opportunities:
        shapes = "; ".join(f"{'x'.join(map(str, t.shape)) or 'scalar'} {t.dtype}" for t in o.inputs[:3])
        lines.append(f"| {o.rank} | {o.name} ({o.label}) | {' → '.join(o.ops[:8])}{' …' if len(o.ops) > 8 else ''} "
                     f"| {shapes} | {_mb(o.bytes_unfused)} → {_mb(o.bytes_fused)} | {o.occurrences} "
                     f"| {_mb(o.bytes_saved_total)} | {o.time_saved_us:.2f} µs | {o.swap['class'] if o.swap else '—'} |")
    return "\n".join(lines)


def markdown(analysis: Analysis) -> str:
    out = [f"# Fusion analysis: {analysis.model}", "", f"- model: {analysis.description}",
           "- inputs: " + ", ".join(f"{t.name} {tuple(t.shape)} {t.dtype}" for t in analysis.inputs),
           f"- activations/weights dtype: {analysis.dtype}",
           f"- time saved is bytes saved {analysis.bandwidth_note}", ""]
    if analysis.layers_total:
        out.insert(3, f"- layers: {analysis.layers_captured} captured, counts scaled to {analysis.layers_total}")
    if analysis.capture_error:
        out += [f"**Capture stopped early:** {analysis.capture_error}. The opportunities below come from "
                "the ops captured before it.", ""]
    out += [table(analysis), ""]
    for o in analysis.opportunities:
        out += [f"## {o.rank}. {o.name}: {o.label}", "",
                f"- ops: {' → '.join(o.ops)}",
                "- inputs: " + ", ".join(f"{t.name} {tuple(t.shape)} {t.dtype}" for t in o.inputs),
                "- outputs: " + ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in o.outputs),
                f"- bytes per call: {o.bytes_unfused} unfused, {o.bytes_fused} fused, {o.bytes_saved} saved; "
                f"{o.occurrences} per forward → {o.bytes_saved_total} saved ({o.time_saved_us:.1f} µs)",
                f"- modules: {', '.join(o.modules[:4])}{' …' if len(o.modules) > 4 else ''}",
                f"- source: {', '.join(o.locations[:4]) or 'unknown'}"]
        if o.swap:
            out.append(f"- integration: every {o.swap['class']}.forward becomes "
                       f"`{o.swap['expression'].format(kernel='kernel')}`")
        out += [f"- note: {n}" for n in o.notes] + [""]
    return "\n".join(out) + "\n"
