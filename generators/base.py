"""The generator protocol: whatever proposes kernel code (a model or the embedded lowering).

Generators never run candidate code themselves: they return source text, and the harness judges it
in an isolated worker. Every value here is JSON-serialisable so it can sit in the graph state.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class GenContext(BaseModel):
    """What a generator knows about the operator it works on."""

    op_name: str
    task_code: str  # the KernelBench task file's source (Model, get_inputs, get_init_inputs)
    framework: str = "torch"
    backend: str = "cuda"
    arch: str = "h100"
    dsl: str = "triton_cuda"
    device: str = "cpu"  # where the harness verifies: "cpu" (interpreter) or "cuda[:N]"


class LLMUsage(BaseModel):
    """One model call, for the results store and the report (never holds a key)."""

    model: str
    purpose: str  # generate | fix | optimize | build_task | probe
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    ok: bool = True
    error: str | None = None


class Proposal(BaseModel):
    """A generator's answer: code to try, or why there is none."""

    code: str | None = None
    error: str | None = None  # e.g. "unsupported: aten.foo" or "reply had no ModelNew"
    usage: list[LLMUsage] = Field(default_factory=list)
    meta: dict = Field(default_factory=dict)  # e.g. {"tunables": {...}, "strategy": "looped"}

    @property
    def ok(self) -> bool:
        return self.code is not None and self.error is None


class CandidateInfo(BaseModel):
    """A verified candidate as the search workflows show it to `optimize`."""

    id: str
    code: str
    verdict: dict = Field(default_factory=dict)  # harness Verdict.to_dict()
    meta: dict = Field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    name: str

    def generate(self, ctx: GenContext) -> Proposal: ...

    def fix(self, ctx: GenContext, code: str, feedback: str, history: list[str]) -> Proposal: ...

    def optimize(
        self, ctx: GenContext, parent: CandidateInfo, inspirations: list[CandidateInfo], seed: int
    ) -> Proposal: ...

    def build_task(self, request: str, excerpt: str | None = None) -> Proposal: ...
