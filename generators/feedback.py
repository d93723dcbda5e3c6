"""Turn a harness verdict into the short feedback a fixer prompt carries.

A model fixes code better from "MISMATCH: max_abs_err=0.5" plus the exception's last lines than
from a 40 kB log, and prompts have a budget. So: one classified headline, the figures that matter
for that class, a hint, then the relevant part of the log, the whole bounded by `max_chars`.

The verdict is `harness.Verdict.to_dict()`; every key is optional here, since verdicts from
older runs or from a crashed worker may lack some.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

LABELS = {
    "compile_error": "COMPILE ERROR",
    "runtime_error": "RUNTIME ERROR",
    "crash": "CRASH",
    "mismatch": "MISMATCH",
    "cheat": "CHEAT DETECTED",
    "timeout": "TIMEOUT",
    "oom": "OUT OF MEMORY",
    "invalid": "INVALID CANDIDATE",
    "slower": "SLOWER THAN REFERENCE",
    "accepted": "ACCEPTED",
    "unknown": "FAILED",
}

# What usually causes each class; short, because the log follows.
HINTS = {
    "compile_error": "Triton could not compile the kernel: check the line the error points at "
    "(constexpr block sizes, dtypes, shapes of tl.arange, unsupported operations).",
    "runtime_error": "The module raised while running: check argument order, shapes, strides, "
    "dtypes and the launch grid.",
    "crash": "The worker process died (segfault or device fault): look for out-of-bounds "
    "loads/stores (missing or wrong masks) and wrong pointer arithmetic.",
    "mismatch": "The outputs differ from the reference: check masks, index arithmetic, "
    "reduction order, accumulation dtype (use fp32) and numerically stable formulas.",
    "cheat": "The computation must happen in @triton.jit kernels; do not call torch ops or the "
    "reference Model to compute the result.",
    "timeout": "The run did not finish in time: look for loops that never end, a grid far too "
    "large, or a block size of 1.",
    "oom": "The run ran out of memory: avoid large temporary buffers and oversized blocks.",
    "invalid": "The candidate does not meet the contract (a ModelNew with the same constructor "
    "and outputs as Model).",
    "slower": "The kernel is correct but slower than the PyTorch reference: improve memory "
    "access (coalescing, fewer passes, fusion), block sizes and num_warps.",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The harness's summaries may open with their own verdict word; the label already says it.
_VERDICT_PREFIX = re.compile(r"^(REJECTED|ACCEPTED)\b\s*(\([^)]*\))?\s*:?\s*")
_TRACEBACK = "Traceback (most recent call last)"


def classify(verdict: Mapping) -> str:
    """The verdict's class: its status, or "slower" for a correct kernel that loses to eager."""
    status = str(verdict.get("status") or ("accepted" if verdict.get("accepted") else "unknown"))
    if status == "accepted":
        speedup = _number(verdict.get("speedup_vs_eager"))
        return "slower" if speedup is not None and speedup < 1.0 else "accepted"
    return status if status in LABELS else "unknown"


def summarize_verdict(verdict: Mapping, max_chars: int = 2000) -> str:
    """Classified summary + relevant log tail, at most `max_chars` characters."""
    kind = classify(verdict)
    lines = [f"[{LABELS[kind]}] {_one_line(verdict.get('summary')) or _default_summary(verdict, kind)}"]
    lines += _figures(verdict, kind)
    if kind in HINTS:
        lines.append("Hint: " + HINTS[kind])
    head = "\n".join(lines)
    if len(head) > max_chars:
        return _clip_middle(head, max_chars)

    log = _ANSI.sub("", str(verdict.get("log_tail") or "")).strip()
    if not log or kind == "accepted":
        return head
    label = "\nLog (relevant tail):\n"
    budget = max_chars - len(head) - len(label)
    if budget < 80:  # not enough room for a useful excerpt
        return head
    return head + label + relevant_log(log, budget)


def summarize_attempt(index: int, verdict: Mapping) -> str:
    """One line per earlier attempt, for the fixer's history."""
    kind = classify(verdict)
    figures = "; ".join(_figures(verdict, kind))
    text = f"attempt {index}: {LABELS[kind]}"
    summary = _one_line(verdict.get("summary"))
    if summary:
        text += f": {summary}"
    if figures:
        text += f" ({figures})"
    return _clip_end(text, 240)


def describe_performance(verdict: Mapping) -> str:
    """Timings, speedups and roofline figures, for the optimize prompt."""
    parts = []
    timings = _flat_numbers(verdict.get("timings"))
    if timings:
        parts.append("timings: " + ", ".join(f"{k}={_fmt(v)}" for k, v in timings))
    for key in ("speedup_vs_eager", "speedup_vs_compile"):
        value = _number(verdict.get(key))
        if value is not None:
            parts.append(f"{key}={_fmt(value)}x")
    roofline = _flat_numbers(verdict.get("roofline"))
    if roofline:
        parts.append("roofline: " + ", ".join(f"{k}={_fmt(v)}" for k, v in roofline))
    return "\n".join(parts) if parts else "no measurements (verified without a GPU, or not benchmarked)"


def relevant_log(log: str, max_chars: int) -> str:
    """The part of a log that explains the failure: from the last traceback on, if there is one.
    When it is still too long, keep its first lines (where the candidate's frames are) and, with
    more room, its end (the exception itself)."""
    start = log.rfind(_TRACEBACK)
    if start > 0:
        log = "...\n" + log[start:]
    if len(log) <= max_chars:
        return log
    return _clip_middle(log, max_chars, head_share=0.3)


def _figures(verdict: Mapping, kind: str) -> list[str]:
    out = []
    if kind == "mismatch":
        keys = [key for key in ("max_abs_err", "max_rel_err") if _number(verdict.get(key)) is not None]
        errs = [f"{key}={_fmt(verdict[key])}" for key in keys]
        if errs:
            out.append("error: " + ", ".join(errs))
    if kind == "cheat":
        launches = verdict.get("triton_launches")
        if launches is not None:
            out.append(f"triton kernel launches: {launches}")
        ops = verdict.get("torch_ops_left")
        if ops:
            shown = ", ".join(map(str, ops[:10])) if isinstance(ops, (list, tuple)) else str(ops)
            out.append(f"torch ops still computing the result: {shown}")
    flags = verdict.get("flags")
    if flags:
        shown = ", ".join(map(str, flags)) if isinstance(flags, (list, tuple, set)) else str(flags)
        out.append(f"flags: {_clip_end(shown, 200)}")
    if kind in ("slower", "accepted"):
        perf = describe_performance(verdict)
        if not perf.startswith("no measurements"):
            out.append(perf.replace("\n", "; "))
    return out


def _default_summary(verdict: Mapping, kind: str) -> str:
    return {
        "accepted": "the kernel is correct",
        "slower": "the kernel is correct but slower than eager PyTorch",
    }.get(kind, f"status {verdict.get('status', 'unknown')}")


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _fmt(value: object) -> str:
    number = _number(value)
    return f"{number:.4g}" if number is not None else str(value)


def _flat_numbers(value: object, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of a nested dict, as dotted names (timings/roofline have no fixed schema)."""
    if not isinstance(value, Mapping):
        return []
    out: list[tuple[str, float]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out += _flat_numbers(item, name + ".")
        elif _number(item) is not None:
            out.append((name, float(item)))  # type: ignore[arg-type]
    return out[:12]


def _one_line(value: object) -> str:
    return _VERDICT_PREFIX.sub("", " ".join(str(value or "").split()))[:300]


def _clip_end(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _clip_middle(text: str, max_chars: int, head_share: float = 0.5) -> str:
    if len(text) <= max_chars:
        return text
    marker = "\n[... {} chars cut ...]\n"
    room = max_chars - len(marker.format(len(text)))
    if room <= 0:
        return text[:max_chars]
    head = int(room * head_share)
    tail = room - head
    cut = len(text) - head - tail
    return text[:head] + marker.format(cut) + (text[-tail:] if tail else "")
