"""The embedded generator: no model, the `codegen` compiler lowers the task to Triton.

Lowering executes the task's `Model` (to capture its graph), so it runs in a harness worker like
any untrusted code. It is deterministic: `fix` and `optimize` move to another point of the
compiler's declared tunable space instead of rewriting code.
"""
from __future__ import annotations

import re

import harness
from generators.base import CandidateInfo, GenContext, Proposal
from generators.feedback import LABELS

LOWER = "codegen:lower_to_dict"
# a generated file's constant saying its template multiplies fp32 in plain TF32
TF32_CONSTANT = re.compile(r"^[A-Z_]*INPUT_PRECISION = 'tf32'$", re.M)


class EmbeddedGenerator:
    name = "embedded"

    def __init__(self, timeout_s: float = 300.0):
        self.timeout_s = timeout_s

    def _lower(self, ctx: GenContext, tunables: dict | None) -> Proposal:
        result = harness.sandbox_call(
            LOWER, {"task_source": ctx.task_code, "tunables": tunables, "target": "cuda"},
            device="cpu", timeout_s=self.timeout_s,
        )
        if not result.ok:
            return Proposal(error=f"lowering failed ({result.status}): {result.log_tail[-400:]}",
                            meta={"give_up": True})
        lowering = result.value
        if not lowering.get("ok"):
            # An operator the compiler cannot lower stays unsupported whatever we retry.
            return Proposal(error=lowering.get("reason") or "unsupported", meta={"give_up": True})
        return Proposal(code=lowering["code"],
                        meta={"tunables": lowering.get("tunables", {}), "space": lowering.get("space", {}),
                              "kernels": lowering.get("kernels", [])})

    def generate(self, ctx: GenContext) -> Proposal:
        return self._lower(ctx, None)

    def fix(self, ctx: GenContext, code: str, feedback: str, history: list[str]) -> Proposal:
        """A deterministic compiler cannot reason about the failure; it tries another point of
        its tunable space (a different seed per attempt), which fixes e.g. resource limits."""
        first = self._lower(ctx, None)
        if not first.ok or not first.meta.get("space"):
            why = first.error or (feedback.splitlines()[0] if feedback else "no tunable space")
            return Proposal(error=f"the embedded generator has no alternative for this task: {why}",
                            meta={"give_up": True})
        tunables = first.meta["tunables"]
        if feedback.startswith(f"[{LABELS['mismatch']}]") and TF32_CONSTANT.search(code):
            # a template that multiplies fp32 in TF32, as the reference's library usually does,
            # missed a reference that did not: the same file at fp32's accuracy first
            exact = {k: "tf32x3" for k, v in tunables.items() if k.endswith(".INPUT_PRECISION") and v == "tf32"}
            if exact:
                return self._lower(ctx, tunables | exact)
        return self._neighbour(ctx, first.meta["space"], tunables, seed=len(history))

    def optimize(self, ctx: GenContext, parent: CandidateInfo, inspirations: list[CandidateInfo],
                 seed: int) -> Proposal:
        space = parent.meta.get("space")
        tunables = parent.meta.get("tunables")
        if not space or tunables is None:
            base = self._lower(ctx, None)
            if not base.ok:
                return base
            space, tunables = base.meta["space"], base.meta["tunables"]
        return self._neighbour(ctx, space, tunables, seed)

    def _neighbour(self, ctx: GenContext, space: dict, tunables: dict, seed: int) -> Proposal:
        from codegen import neighbour  # pure search-space arithmetic: runs no task code

        return self._lower(ctx, neighbour(space, tunables, seed))

    def build_task(self, request: str, excerpt: str | None = None) -> Proposal:
        return Proposal(error="the embedded generator writes tasks only for the operator catalogue; "
                              "pass --task FILE or use --llm openai")
