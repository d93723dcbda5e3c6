"""A generator that replays hand-written kernels, so graph tests control what each attempt gives."""
from __future__ import annotations

from pathlib import Path

from generators.base import Proposal

KERNELS = Path(__file__).parent / "kernels"
GOOD = (KERNELS / "relu_triton.py").read_text()
BUGGY = (KERNELS / "relu_triton_buggy.py").read_text()


class ScriptedGenerator:
    """Answers generate/fix with the next code of `script` (the last one repeats)."""

    name = "scripted"

    def __init__(self, script: list[str], calls: list[tuple[str, str]]):
        self.script, self.calls = script, calls

    def _next(self, action: str, feedback: str = "") -> Proposal:
        self.calls.append((action, feedback))
        code = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return Proposal(code=code)

    def generate(self, ctx):
        return self._next("generate")

    def fix(self, ctx, code, feedback, history):
        return self._next("fix", feedback)

    def optimize(self, ctx, parent, inspirations, seed):
        return self._next("optimize")

    def build_task(self, request, excerpt=None):
        return Proposal(error="not scripted")


def scripted_factory(script: list[str], calls: list[tuple[str, str]]):
    return lambda settings: ScriptedGenerator(script, calls)
