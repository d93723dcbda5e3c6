"""What the harness hands back: plain dataclasses that survive a JSON round trip."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _judge_source_digest() -> str:
    """A digest of the judge's own source (every module of this package). A version string bumped
    by hand was forgotten once, and a changed judge was served its predecessor's verdicts."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# Part of every verdict-cache key: a verdict from another judge is never served as a current one.
HARNESS_VERSION = f"2026.11-{_judge_source_digest()}"
# Verdicts that the same code, task, device and judge would always get again. Timeouts, crashes and
# out-of-memory depend on the machine's load at the time; they are judged afresh.
CACHEABLE_STATUSES = ("accepted", "mismatch", "cheat", "compile_error", "invalid")



def judge_key(device: str, dsl: str, trials: int, measure: bool = True) -> str:
    """What a cached verdict must have been judged by to be served again."""
    return f"{HARNESS_VERSION}|{device}|{dsl}|trials={trials}|measure={int(measure)}"


VERDICT_STATUSES = (
    "accepted", "mismatch", "cheat", "compile_error", "runtime_error",
    "crash", "timeout", "oom", "invalid",
)


class HarnessInputError(ValueError):
    """Bad input found before any worker starts (missing file, no Model/ModelNew). One-line message."""


@dataclass
class Verdict:
    status: str
    summary: str
    log_tail: str = ""
    max_abs_err: float | None = None
    max_rel_err: float | None = None  # worst |got - expected| divided by the output's scale (max |expected|)
    triton_launches: int = 0
    torch_ops_left: list[str] = field(default_factory=list)
    allowed_leftovers: list[str] = field(default_factory=list)
    timings: dict[str, Any] | None = None  # {"candidate"|"eager"|"compile": {"median_ms", "iqr_ms", ...}}
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    roofline: dict[str, Any] | None = None
    flags: list[str] = field(default_factory=list)
    device: str = ""
    device_name: str = ""
    shrunk: dict[str, list[int]] | None = None  # {constant: [original, shrunk]}
    versions: dict[str, str] = field(default_factory=dict)
    trials: int = 0
    seed: int | None = None            # base seed of the judge's inputs (drawn per job unless given)
    sandbox: list[str] = field(default_factory=list)  # isolation the candidate ran under, and gaps
    input_variants: list[str] = field(default_factory=list)  # extra input distributions checked
    second_shape: str | None = None    # the other shape the candidate was checked on, if any
    phase_s: dict[str, float] = field(default_factory=dict)  # wall time of each stage of the judgement
    memory: dict[str, Any] | None = None  # footprint estimate, free memory, peak device/host memory (harness.memory)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["accepted"] = self.accepted
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass
class TaskCheck:
    ok: bool
    problems: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)   # "float32[128, 4096]" per input
    outputs: list[str] = field(default_factory=list)
    init_inputs: list[str] = field(default_factory=list)
    shrunk: dict[str, list[int]] | None = None
    log_tail: str = ""
    notes: list[str] = field(default_factory=list)   # said at confirm_task, not problems (e.g. an all-zero output)
    footprint: dict[str, Any] | None = None          # harness.memory.Footprint.to_dict() at the checked sizes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SandboxResult:
    """Outcome of one isolated job. status: "ok" (value holds the result), "error" (the target raised),
    "crash" (the worker died without a result) or "timeout"."""
    status: str
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    signal_name: str | None = None
    wall_s: float = 0.0
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
