"""Temporaries named for what they hold, and one-use temporaries folded into their use.

The emitter names values by a prefix and a counter (`x1`, `sum2`, `v4`, `m3`); this pass renames
them the way a kernel engineer would write them: a load after its tensor (`x`, `weight`), a row
sum `row_sum`, the mean `mean`, the value minus its mean `centered`, a reciprocal square root
`rstd`, the stored value `y`, and folds masked operands and other values used once into the
expression that uses them (`row_sum = tl.sum(tl.where(mask, x, 0), axis=1)[:, None]`).
It works on the kernel's source lines: names are whole words, blocks are indentation.
"""
from __future__ import annotations

import re

_TEMP = re.compile(r"^(\s*)([a-z_]*[a-z])(\d+) = (.*)$")
_INDEX_PREFIXES = {"row", "col", "idx", "c", "r"}
# prefix -> name, for temporaries whose prefix already says what they are
_BY_PREFIX = {"sum": "row_sum", "amax": "row_max", "amin": "row_min", "prod": "row_prod", "any": "row_any",
              "all": "row_all", "sumexp": "sum_exp", "argmax": "arg_max", "argmin": "arg_min",
              "scan": "scan", "mean": "mean", "var": "var", "centered": "centered", "acc": "acc",
              "acc_i": "acc_idx", "run_max": "run_max", "run_sum": "run_sum", "best": "best",
              "better": "better", "carry": "carry", "count": "count", "w_n": "w_count", "w_mean": "w_mean",
              "w_m2": "w_m2", "dm": "delta_mean", "m2": "m2", "inv": "inv_count", "up": "is_new_max",
              "part": "part", "in_range": "in_range", "d": "delta", "e": "e", "p": "pos", "i": "index",
              "ok": "valid", "lin": "lin", "w": "w", "s": "s"}
_FOLDABLE = {"m", "v", "t"}   # masked operands and plain values: folded into a single use
_MAX_LINE = 110


def _uses(name: str, lines: list[str]) -> int:
    return sum(len(re.findall(rf"\b{name}\b", line)) for line in lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _wrap(expr: str) -> str:
    if re.fullmatch(r"[\w.]+(\[[^\]]*\])?", expr) or re.fullmatch(r"[\w.]+\(.*\)(\[[^\]]*\])?", expr) and _closes_at_end(expr):
        return expr
    return f"({expr})"


def _closes_at_end(expr: str) -> bool:
    """Whether the call's first '(' closes at the end (one call, not `f(a) + g(b)`)."""
    depth = 0
    start = expr.index("(")
    for i, c in enumerate(expr[start:], start):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0:
            return expr[i + 1:] == "" or re.fullmatch(r"\[[^\]]*\]", expr[i + 1:]) is not None
    return False


def _substitute(line: str, name: str, expr: str) -> str:
    """`line` with its one use of `name` replaced by `expr`, parenthesised only where needed."""
    m = re.search(rf"\b{name}\b", line)
    before, after = line[:m.start()].rstrip(), line[m.end():].lstrip()
    ops = _top_level_ops(expr)
    if after.startswith((".", "[")):
        bare = False
    elif before.endswith(("(", ",", "=")) and after[:1] in (")", ",", ""):
        bare = True  # a whole argument or right-hand side
    elif before.endswith("=") and after[:1] in "+-" and ops <= {"+", "-", "*", "/"}:
        bare = True  # (a * b) + c, (a - b) + c: left to right
    elif before.endswith("=") and after[:1] in "*/" and ops <= {"*", "/"}:
        bare = True
    else:
        bare = False
    return line[:m.start()] + (expr if bare else _wrap(expr)) + line[m.end():]


def _top_level_ops(expr: str) -> set:
    """The binary operators of expr outside parentheses and brackets."""
    depth, flat = 0, []
    for c in expr:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(c, 0)
        flat.append(c if depth == 0 or c in "([" else " ")
    return set(re.findall(r" (\+|-|\*|/|//|%|<|>|<=|>=|==|!=|&|\|) ", "".join(flat)))


def _fold(lines: list[str], keep: set) -> list[str]:
    """Fold one-use temporaries (masked operands, plain values not in `keep`) into their use,
    within one block and while lines stay short."""
    changed = True
    while changed:
        changed = False
        for i, line in enumerate(lines):
            m = _TEMP.match(line)
            if not m or m.group(2) not in _FOLDABLE or "tl.load(" in m.group(4):
                continue
            name = m.group(2) + m.group(3)
            if name in keep:
                continue
            rest = lines[i + 1:]
            if _uses(name, rest) != 1 or _uses(name, lines[:i]) != 0:
                continue
            j = next(k for k, l in enumerate(rest) if re.search(rf"\b{name}\b", l))
            depth = _indent(line)
            if _indent(rest[j]) != depth or any(_indent(l) < depth for l in rest[:j]):
                continue  # another block (a loop body): folding would repeat the work there
            new = _substitute(rest[j], name, m.group(4))
            if len(new) > _MAX_LINE:
                continue
            lines = lines[:i] + rest[:j] + [new] + rest[j + 1:]
            changed = True
            break
    return lines


def _meaning(prefix: str, rhs: str, named: set) -> str | None:
    """A name for a temporary from what computes it (`rhs`, with the names chosen so far)."""
    load = re.match(r"tl\.load\((\w+)_ptr\b", rhs)
    if load:
        return load.group(1)
    if prefix == "sum" and re.search(r"\b(\w+) \* \1\b", rhs):
        return "sum_sq"
    if prefix in ("v", "t"):
        divided = re.fullmatch(r"(\w+) / \(?(?:1\.0 \* )?n_cols\)?", rhs)
        if divided and divided.group(1) in ("row_sum", "sum_sq"):
            return "mean" if divided.group(1) == "row_sum" else "mean_sq"
        if re.fullmatch(r"\w+ - mean", rhs):
            return "centered"
        if rhs.startswith("tl.rsqrt("):
            return "rstd"
        if rhs.startswith("tl.sqrt(") and "mean_sq" in rhs:
            return "rms"
        if rhs.startswith("tl.exp("):
            return "e"
        return None
    return _BY_PREFIX.get(prefix)


def _one_mask(lines: list[str]) -> list[str]:
    """`mask = row_mask & col_mask` once per column block, instead of the conjunction at every use."""
    text = "\n".join(lines)
    if text.count("row_mask & col_mask") < 2 or re.search(r"^\s*mask = ", text, re.M):
        return lines
    out = []
    for line in lines:
        out.append(line.replace("row_mask & col_mask", "mask"))
        if re.match(r"\s*col_mask = ", line):
            out.append(" " * _indent(line) + "mask = row_mask & col_mask")
    return out


def tidy(lines: list[str]) -> list[str]:
    """The kernel body with temporaries folded or named for their meaning."""
    lines = _one_mask(lines)
    text = "\n".join(lines)
    taken = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    stored = set(re.findall(r"tl\.store\([^,]+, \(?(\w+)(?:\.to\(|\s*,)", text))
    names: dict[str, str] = {}
    defs: dict[str, str] = {}
    for line in lines:  # meaningful names first: they are kept, not folded
        m = _TEMP.match(line)
        if not m or m.group(2) in _INDEX_PREFIXES or "size" in m.group(2):
            continue
        old = m.group(2) + m.group(3)
        defs[old] = m.group(4)
        rhs = re.sub(r"\b\w+\b", lambda w: names.get(w.group(0), w.group(0)), m.group(4))
        if m.group(2) == "sum":  # a sum of squares? look through the masked, squared operand
            for _ in range(3):
                rhs = re.sub(r"\b[mv]\d+\b", lambda w: f"({defs.get(w.group(0), w.group(0))})", rhs)
            rhs = re.sub(r"\b\w+\b", lambda w: names.get(w.group(0), w.group(0)), rhs)
        base = "y" if old in stored and m.group(2) in _FOLDABLE else _meaning(m.group(2), rhs, set(names.values()))
        if base is None or old in names:
            continue
        new, n = base, 2
        while new in taken and new != old:
            new, n = f"{base}_{n}", n + 1
        taken.add(new)
        names[old] = new
    lines = _fold(list(lines), set(names))
    count = 0
    for line in lines:  # what is left unnamed: t1, t2 ...
        m = _TEMP.match(line)
        if m and m.group(2) in _FOLDABLE and m.group(2) + m.group(3) not in names:
            count += 1
            new = f"t{count}"
            while new in taken:
                count += 1
                new = f"t{count}"
            taken.add(new)
            names[m.group(2) + m.group(3)] = new
    if not names:
        return lines
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b")
    return [pattern.sub(lambda w: names[w.group(0)], line) for line in lines]
