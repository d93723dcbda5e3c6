"""The words of a request that change what the operator computes, beyond its name and shapes.

A request is honoured word for word or refused naming the word: "leaky relu slope 0.2" gets slope
0.2, "GELU tanh approximation" gets approximate='tanh', "relu then softmax", "fused bias + gelu" and
"gelu(x @ W + b)" become composite tasks (their stages in the order they apply), and "int8",
"dropout" or "backward" are one-line errors instead of a plain fp32 forward kernel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodes.errors import UserError

# Stages a composite task chains, in the order they apply: a matmul, a bias add, then
# activations and row-wise softmaxes.
COMPOSABLE_KINDS = ("unary", "rowwise")

UNSUPPORTED_DTYPES = ("int4", "int8", "int16", "int32", "int64", "uint8", "float64", "fp64", "fp8", "float8",
                      "e4m3", "e4m3fn", "e5m2", "fp4", "nvfp4", "mxfp4", "complex64", "complex128")
# Words whose meaning the catalogue's tasks cannot carry: refused rather than dropped.
UNHONOURED = {
    "backward": "backward (gradient) kernels", "gradient": "gradients", "grad": "gradients",
    "dropout": "dropout", "causal": "causal masking", "mask": "masking", "masked": "masking",
    "transpose": "transposed operands", "transposed": "transposed operands",
    "inplace": "in-place updates", "in-place": "in-place updates", "quantized": "quantization",
    "quantization": "quantization", "quantize": "quantization", "sparse": "sparsity",
    "residual": "a residual add", "scale": "a scale factor", "scaled": "a scale factor",
}

SLOPE_RE = re.compile(r"\b(?:negative[_\s]slope|slope|alpha)\s*(?:=|:|of|is)?\s*(-?\d*\.?\d+(?:e-?\d+)?)")
TANH_APPROX_RE = re.compile(
    r"tanh[\s-]*approx\w*|approx\w*\s*(?:=\s*)?['\"]?\s*tanh|approx\w*\s+(?:with|using|by)\s+tanh")
BIAS_RE = re.compile(r"\bbias\b|\+\s*b\b")
MATMUL_SYMBOL_RE = re.compile(r"@")


@dataclass
class Meaning:
    """What the request says beyond the op names: modifiers and the order of composite stages."""

    stages: list[str]  # ops in the order they apply ("matmul", "bias", "relu", "softmax", ...)
    negative_slope: float | None = None
    approximate: str | None = None  # gelu: "tanh"
    notes: list[str] = field(default_factory=list)  # for the "understood" line


def _claim(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    if any(start < e and s < end for s, e in spans):
        return False
    spans.append((start, end))
    return True


def _close_paren(text: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _applies_at(text: str, start: int, end: int) -> int:
    """Where an op applies in reading order: `gelu(x @ W + b)` applies at its closing paren,
    after what it wraps; `relu then softmax` in the order written."""
    match = re.match(r"\s*\(", text[end:])
    if match:
        open_at = end + match.end() - 1
        close = _close_paren(text, open_at)
        inner = text[open_at + 1:close] if close is not None else ""
        if close is not None and not re.fullmatch(r"[\d\s,x×]*", inner):  # not a shape "(128, 4096)"
            return close
    return start


def find_stages(text: str, ops: dict[str, tuple[tuple[str, ...], str]]) -> list[tuple[int, str]]:
    """(position it applies at, op) for every op mention, longest alias first, no overlaps."""
    spans: list[tuple[int, int]] = []
    found = []
    aliases = sorted(((a, op) for op, (names, _) in ops.items() for a in names), key=lambda p: -len(p[0]))
    for alias, op in aliases:
        for m in re.finditer(rf"(?<![\w]){re.escape(alias)}(?![\w])", text):
            if _claim(spans, m.start(), m.end()):
                found.append((_applies_at(text, m.start(), m.end()), op))
    for m in MATMUL_SYMBOL_RE.finditer(text):
        found.append((m.start(), "matmul"))
    return found


def read_meaning(text: str, ops: dict[str, tuple[tuple[str, ...], str]]) -> Meaning:
    """The request's stages and modifiers; UserError naming any word that cannot be honoured."""
    for word in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)?", text):
        if word in UNSUPPORTED_DTYPES:
            raise UserError(f"dtype '{word}' is not supported by the built-in tasks: use fp32, fp16 or bf16 "
                            "(or pass --task FILE with your own reference)")
    for word, meaning in UNHONOURED.items():
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
            raise UserError(f"the request asks for {meaning} ('{word}'), which the built-in tasks cannot express: "
                            "pass --task FILE with the exact reference, or use --llm openai")
    approximate = None
    tanh_match = TANH_APPROX_RE.search(text)
    if tanh_match:
        approximate = "tanh"
        text = text[:tanh_match.start()] + " " * (tanh_match.end() - tanh_match.start()) + text[tanh_match.end():]
    found = find_stages(text, ops)
    if any(op == "matmul" for _, op in found) or BIAS_RE.search(text):
        found = [(at, op) for at, op in found if op != "add"]  # "add bias", "x @ W + b": the bias add
    for m in BIAS_RE.finditer(text):
        found.append((m.start(), "bias"))
    stages = []
    for _, op in sorted(found):
        if not stages or stages[-1] != op or op in ("matmul", "bias"):
            stages.append(op)
    # "x @ W": one matmul however many ways it is written.
    stages = [op for i, op in enumerate(stages) if op != "matmul" or "matmul" not in stages[:i]]
    meaning = Meaning(stages=stages, approximate=approximate)
    slope = SLOPE_RE.search(text)
    if slope:
        if "leaky_relu" not in stages:
            raise UserError(f"'{slope.group(0)}' sets a slope, but the request has no leaky relu to apply it to")
        meaning.negative_slope = float(slope.group(1))
        meaning.notes.append(f"negative_slope {meaning.negative_slope:g}")
    if approximate:
        if "gelu" not in stages:
            raise UserError("the request asks for a tanh approximation, but has no gelu to apply it to")
        meaning.notes.append("gelu approximate='tanh'")
    return meaning


def check_composite(stages: list[str], ops: dict[str, tuple[tuple[str, ...], str]]) -> None:
    """A composite the catalogue can build: [matmul] [bias] activations/softmaxes, in that order."""
    for i, op in enumerate(stages):
        kind = ops[op][1] if op in ops else op
        ok = (op == "matmul" and i == 0) or (op == "bias" and stages[:i] in ([], ["matmul"])) \
            or kind in COMPOSABLE_KINDS
        if not ok:
            raise UserError(
                f"the request combines {' then '.join(stages)}: composite tasks are a matmul, a bias add, "
                "then activations and softmaxes in that order; pass --task FILE for other combinations")
