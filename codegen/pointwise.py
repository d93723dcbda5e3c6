"""The one formula table: Triton expressions for pointwise ops, in fused kernels and in the
epilogues of matmul / attention / convolution templates alike.

`expression(node, operand)` returns one Triton expression (a string) for a pointwise node;
`operand(value)` turns each argument (an IR Node or a Python scalar) into the expression of its
value, already in the compute type: fp32 for floating point, int64/int32 for integers, int1 for
bool. Every float op computes in fp32; the store casts to the output dtype.
"""
from __future__ import annotations

import math
import re

import torch

from .ir import Node, Sym


# Every op `expression` has a formula for (ATen overload packet names).
OPS = frozenset({
    "add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "neg", "abs", "exp", "exp2",
    "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sinh",
    "cosh", "sigmoid", "erf", "erfc", "reciprocal", "floor", "ceil", "round", "trunc", "relu",
    "square", "isnan", "isinf", "logical_not", "signbit", "bitwise_not", "sign", "sgn", "_to_copy",
    "convert_element_type", "clone", "alias", "copy", "lift_fresh_copy", "detach", "contiguous",
    "pow", "maximum", "minimum", "fmax", "fmin", "clamp", "clamp_min", "clamp_max", "where",
    "masked_fill", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or", "fmod", "remainder", "hypot", "copysign", "heaviside", "gelu",
    "elu", "selu", "celu", "hardtanh", "relu6", "leaky_relu", "silu", "hardsigmoid", "hardswish",
    "softplus", "mish", "dropout", "type_as", "to",
})


class NotPointwise(Exception):
    pass


def compute_type(dtype: torch.dtype) -> str:
    if dtype.is_floating_point:
        return "tl.float32"
    if dtype == torch.bool:
        return "tl.int1"
    if dtype in (torch.int64, torch.uint64):
        return "tl.int64"
    return "tl.int32"


def literal(value) -> str:
    """A Python scalar as Triton source."""
    if isinstance(value, Sym):  # host size arithmetic, inlined (sizes are kernel arguments)
        return "(" + value.expr.replace("float(", "1.0 * (") + ")"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    raise NotPointwise(f"literal {value!r}")


_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")


def cast(expr: str, tl_type: str) -> str:
    """expr converted to tl_type. A number (a constant the trace holds, `torch.tensor(-1)`) is
    converted here, as torch converts a tensor of it: Triton has no `.to` on a Python number."""
    if _NUMBER.fullmatch(expr):
        value = float(expr)
        if tl_type == "tl.float32":
            return literal(value)
        return literal(bool(value)) if tl_type == "tl.int1" else literal(int(value))
    return f"{expr}.to({tl_type})"


def _tanh(x: str) -> str:
    # 1 - 2 / (exp(2x) + 1): one exp and one fast division, ~1e-7 off in fp32, exact limits at
    # +-inf, and portable (libdevice's tanh is backend-specific)
    return f"(1.0 - tl.fdiv(2.0, tl.exp(2.0 * {x}) + 1.0))"


def _extremum(is_max: bool, a: str, b: str, floaty: bool) -> str:
    """torch.maximum/minimum (and clamps): a NaN operand gives NaN, which tl's default does not promise."""
    fn = "tl.maximum" if is_max else "tl.minimum"
    return f"{fn}({a}, {b}, propagate_nan=tl.PropagateNan.ALL)" if floaty else f"{fn}({a}, {b})"


def _elu(x: str, alpha: float, scale: float, input_scale: float) -> str:
    return f"({_f(scale)} * tl.where({x} > 0.0, {x}, {_f(alpha)} * (tl.exp({x} * {_f(input_scale)}) - 1.0)))"


def _f(v):
    return literal(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def expression(node: Node, operand) -> str:
    """The expression computing `node` from its operands' expressions."""
    op, a = node.op, node.attrs

    def arg(name, default=None):
        v = a.get(name, default)
        if isinstance(v, Node):
            return operand(v)
        if isinstance(v, Sym):
            return literal(v)
        return v

    x = arg("self") if "self" in a else None
    floaty = node.dtype.is_floating_point

    def fl(v):  # a scalar operand of float math is written as a float literal
        return _f(v) if floaty else (literal(v) if not isinstance(v, str) else v)

    if op in ("add", "sub"):
        y = fl(arg("other"))
        alpha = a.get("alpha", 1)
        if alpha not in (1, None):
            y = f"({fl(alpha)} * {y})"
        return f"({x} {'+' if op == 'add' else '-'} {y})"
    if op == "rsub":
        return f"({fl(arg('other'))} - {x})"
    if op == "mul":
        return f"({x} * {fl(arg('other'))})"
    if op in ("div", "true_divide"):
        mode = a.get("rounding_mode")
        y = arg("other")
        if mode is None:
            return f"({_f(x) if not isinstance(x, str) else x} / {_f(y)})"
        if mode == "trunc":
            q = f"({x} / {_f(y)})" if floaty else f"({x}.to(tl.float32) / {_f(y)})"
            return f"tl.where({q} < 0, tl.ceil({q}), tl.floor({q}))" if floaty else f"({x} // {literal(y) if not isinstance(y, str) else y})"
        return f"tl.floor({x} / {_f(y)})" if floaty else f"tl.floor({x}.to(tl.float32) / {_f(y)}).to({compute_type(node.dtype)})"
    if op == "floor_divide":
        return f"tl.floor({x} / {_f(arg('other'))})"
    unary = {
        "neg": "(-{x})", "abs": "tl.abs({x})", "exp": "tl.exp({x})", "exp2": "tl.exp2({x})",
        "log": "tl.log({x})", "log2": "tl.log2({x})", "log10": "(tl.log({x}) * 0.4342944819032518)",
        "log1p": "tl.log(1.0 + {x})", "expm1": "(tl.exp({x}) - 1.0)", "sqrt": "tl.sqrt({x})",
        "rsqrt": "tl.rsqrt({x})", "sin": "tl.sin({x})", "cos": "tl.cos({x})",
        "tan": "(tl.sin({x}) / tl.cos({x}))", "sigmoid": "tl.sigmoid({x})", "erf": "tl.erf({x})",
        "erfc": "(1.0 - tl.erf({x}))", "reciprocal": "(1.0 / {x})", "floor": "tl.floor({x})",
        "ceil": "tl.ceil({x})", "relu": "tl.where({x} < 0.0, 0.0, {x})", "square": "({x} * {x})",
        "sinh": "(0.5 * (tl.exp({x}) - tl.exp(-{x})))", "cosh": "(0.5 * (tl.exp({x}) + tl.exp(-{x})))",
        "isnan": "({x} != {x})", "isinf": "(tl.abs({x}) == float(\"inf\"))",
        "logical_not": "({x} == 0)", "signbit": "({x} < 0)",
        "trunc": "tl.where({x} < 0, tl.ceil({x}), tl.floor({x}))",
        "round": "tl.where({x} - tl.floor({x}) == 0.5, 2.0 * tl.floor(0.5 * tl.floor({x}) + 0.5), tl.floor({x} + 0.5))",
    }
    if op in unary:
        if op == "relu" and not floaty:
            return f"tl.maximum({x}, 0)"
        return unary[op].format(x=x)
    if op == "tanh":
        return _tanh(x)
    if op == "bitwise_not":
        return f"({x} == 0)" if node.dtype == torch.bool else f"(~{x})"
    if op in ("sign", "sgn"):
        return f"(({x} > 0).to(tl.float32) - ({x} < 0).to(tl.float32))" if floaty else f"(({x} > 0).to(tl.int64) - ({x} < 0).to(tl.int64))"
    if op in ("_to_copy", "convert_element_type", "clone", "alias", "copy", "lift_fresh_copy",
              "detach", "contiguous"):
        if op == "copy":
            x = arg("src")
        if x is None:
            x = operand(node.inputs[0])
        return cast(x, compute_type(node.dtype))
    if op == "pow":
        if "exponent" in a and not isinstance(a["exponent"], Node):
            e = a["exponent"]
            base = x if x is not None else fl(arg("self"))
            if isinstance(e, (int, float)) and float(e).is_integer() and 0 <= e <= 4:
                e = int(e)
                return "1.0" if e == 0 else "(" + " * ".join([base] * e) + ")"
            if e == 0.5:
                return f"tl.sqrt({base})"
            if e == -0.5:
                return f"tl.rsqrt({base})"
            if e == -1:
                return f"(1.0 / {base})"
            if isinstance(e, (int, float)) and float(e).is_integer():
                mag = f"tl.exp({_f(e)} * tl.log(tl.abs({base})))"
                return f"tl.where(({base} < 0) & ({int(e) % 2} == 1), -{mag}, {mag})"
            return f"tl.exp({_f(e)} * tl.log({base}))"
        base = arg("self")
        e = arg("exponent")
        return f"tl.exp({_f(e)} * tl.log({_f(base)}))"
    if op in ("fmax", "fmin"):  # NaN loses to a number (tl's default on GPUs, fmaxf)
        return f"{'tl.maximum' if op == 'fmax' else 'tl.minimum'}({x}, {fl(arg('other'))})"
    if op in ("maximum", "minimum"):
        return _extremum(op == "maximum", x, fl(arg("other")), floaty)
    if op == "clamp":
        out = x
        lo, hi = arg("min"), arg("max")
        if lo is not None:
            out = _extremum(True, out, fl(lo), floaty)
        if hi is not None:
            out = _extremum(False, out, fl(hi), floaty)
        return out
    if op in ("clamp_min", "clamp_max"):
        return _extremum(op == "clamp_min", x, fl(arg("min") if op == "clamp_min" else arg("max")), floaty)
    if op == "where":
        c, s, o = arg("condition"), arg("self"), arg("other")
        return f"tl.where({c}, {fl(s)}, {fl(o)})"
    if op == "masked_fill":
        return f"tl.where({arg('mask')}, {fl(arg('value'))}, {x})"
    cmp = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    if op in cmp:
        y = arg("other")
        return f"({x} {cmp[op]} {literal(y) if not isinstance(y, str) else y})"
    logic = {"logical_and": "&", "logical_or": "|", "logical_xor": "^", "bitwise_and": "&", "bitwise_or": "|"}
    if op in logic:
        y = arg("other")
        if op.startswith("logical"):
            return f"(({x} != 0) {logic[op]} ({y} != 0))"
        return f"({x} {logic[op]} {literal(y) if not isinstance(y, str) else y})"
    if op in ("fmod", "remainder"):
        y = fl(arg("other"))
        q = f"({x} / {y})"
        if op == "fmod":
            return f"({x} - {y} * tl.where({q} < 0, tl.ceil({q}), tl.floor({q})))"
        return f"({x} - {y} * tl.floor({q}))"
    if op == "hypot":
        y = arg("other")
        return f"tl.sqrt({x} * {x} + {y} * {y})"
    if op == "copysign":
        y = fl(arg("other"))
        return f"tl.where({y} < 0, -tl.abs({x}), tl.abs({x}))"
    if op == "heaviside":
        y = fl(arg("values"))
        return f"tl.where({x} == 0, {y}, ({x} > 0).to(tl.float32))"
    # activations torch keeps whole even after decomposition
    if op == "gelu":
        if a.get("approximate", "none") == "tanh":
            inner = f"0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x})"
            return f"(0.5 * {x} * (1.0 + {_tanh(inner)}))"
        return f"(0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476)))"
    if op == "elu":
        return _elu(x, *(float(a.get(k, 1.0)) for k in ("alpha", "scale", "input_scale")))
    if op == "hardtanh":
        return _extremum(False, _extremum(True, x, _f(a.get("min_val", -1.0)), True), _f(a.get("max_val", 1.0)), True)
    if op == "leaky_relu":
        return f"tl.where({x} > 0.0, {x}, {x} * {_f(a.get('negative_slope', 0.01))})"
    if op == "relu6":
        return _extremum(False, _extremum(True, x, "0.0", True), "6.0", True)
    if op == "hardswish":
        return f"({x} * {_extremum(False, _extremum(True, f'({x} + 3.0)', '0.0', True), '6.0', True)} / 6.0)"
    if op == "selu":
        return _elu(x, 1.6732632423543772, 1.0507009873554805, 1.0)
    if op == "celu":
        alpha = float(a.get("alpha", 1.0))
        return _elu(x, alpha, 1.0, 1.0 / alpha)
    if op in ("dropout", "type_as", "to"):  # eval-mode dropout; casts happen at the store
        if op == "dropout" and a.get("train") and a.get("p"):
            raise NotPointwise("aten.dropout in training mode")
        return x if x is not None else operand(node.inputs[0])
    if op == "silu":
        return f"({x} * tl.sigmoid({x}))"
    if op == "hardsigmoid":
        return _extremum(False, _extremum(True, f"({x} / 6.0 + 0.5)", "0.0", True), "1.0", True)
    if op == "softplus":
        beta, thr = float(a.get("beta", 1.0)), float(a.get("threshold", 20.0))
        return f"tl.where({x} * {_f(beta)} > {_f(thr)}, {x}, tl.log(1.0 + tl.exp({x} * {_f(beta)})) / {_f(beta)})"
    if op == "mish":
        sp = f"tl.where({x} > 20.0, {x}, tl.log(1.0 + tl.exp({x})))"
        return f"({x} * {_tanh(sp)})"
    raise NotPointwise(f"aten.{op}")
