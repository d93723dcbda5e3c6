"""A deterministic fake generator and evaluator over a small tunable space.

For tests, and for exercising the search machinery (progress, artefacts, resume) without a GPU or a
model. The fake kernel's "time" has a known optimum, so a working search must find it.
"""
from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter

from generators.base import CandidateInfo, Proposal

SPACE = {
    "BLOCK": [32, 64, 128, 256, 512, 1024, 2048],
    "WARPS": [1, 2, 4, 8, 16],
    "STAGES": [1, 2, 3, 4],
}
OPTIMUM = {"BLOCK": 512, "WARPS": 8, "STAGES": 3}
SEED_TUNABLES = {"BLOCK": 64, "WARPS": 1, "STAGES": 1}
EAGER_MS, COMPILE_MS = 2.0, 1.6


class SimulatedKill(BaseException):
    """Stands for kill -9: a BaseException so no `except Exception` in the search swallows it."""


def kernel_code(tunables: dict) -> str:
    lines = ["# fake kernel"] + [f"{name} = {tunables[name]}" for name in SPACE]
    return "\n".join(lines) + "\n"


def parse_tunables(code: str) -> dict:
    return {name: int(re.search(rf"^{name} = (\d+)$", code, re.M).group(1)) for name in SPACE}


class FakeProposer:
    """optimize(): move one tunable of the parent to a neighbouring value (like the embedded one)."""

    def __init__(self, fail_every: int = 0):
        # seeds divisible by fail_every get an error instead of code: deterministic under threads
        self.fail_every = fail_every
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, parent: CandidateInfo, inspirations: list[CandidateInfo], seed: int) -> Proposal:
        with self._lock:
            self.calls += 1
        if self.fail_every and seed % self.fail_every == 0:
            return Proposal(error="fake: no idea this time")
        rng = random.Random(seed)
        tunables = dict(parse_tunables(parent.code))
        name = rng.choice(sorted(SPACE))
        values = SPACE[name]
        index = values.index(tunables[name])
        moves = [step for step in (-1, 1) if 0 <= index + step < len(values)]
        tunables[name] = values[index + rng.choice(moves)]
        return Proposal(code=kernel_code(tunables), meta={"tunables": tunables})


def fake_time_ms(tunables: dict) -> float:
    """1.0 ms at the optimum, slower the further (in log2 steps) from it."""
    distance = sum(abs(math.log2(tunables[n]) - math.log2(OPTIMUM[n])) for n in SPACE)
    return 1.0 + 0.15 * distance


class FakeEvaluator:
    """evaluate(codes): too many threads (BLOCK*WARPS > 8192) fail, the rest get a fake time."""

    def __init__(self, timed: bool = True, kill_on_call: int | None = None):
        self.timed = timed
        self.kill_on_call = kill_on_call  # raise SimulatedKill on this call (1-based)
        self.batches: list[list[str]] = []
        self.evaluated: Counter = Counter()

    def verdict(self, code: str) -> dict:
        tunables = parse_tunables(code)
        if tunables["BLOCK"] * tunables["WARPS"] > 8192:
            return {"status": "compile_error", "accepted": False, "summary": "too many threads",
                    "timings": None}
        timings = None
        if self.timed:
            timings = {
                "candidate": {"median_ms": fake_time_ms(tunables)},
                "eager": {"median_ms": EAGER_MS},
                "compile": {"median_ms": COMPILE_MS},
            }
        return {"status": "ok", "accepted": True, "summary": "correct", "timings": timings}

    def __call__(self, codes: list[str]) -> list[dict]:
        if self.kill_on_call is not None and len(self.batches) + 1 == self.kill_on_call:
            raise SimulatedKill(f"killed on evaluator call {self.kill_on_call}")
        self.batches.append(list(codes))
        self.evaluated.update(codes)
        return [self.verdict(code) for code in codes]


def seed_code() -> str:
    return kernel_code(SEED_TUNABLES)
