"""Run a check function in an isolated worker, never in the orchestrator.

`run_check("integration.checks:check_extracted", {...})` hands the call to the harness sandbox
(`harness.sandbox_call`): a forked child of a fork server that has torch and triton loaded, with
a wall-clock limit, its own process group and a memory limit. A crash, hang or CUDA fault in user
or generated code stays in that child. On CPU, Triton kernels run in the interpreter.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness import sandbox_call


@dataclass
class CheckResult:
    ok: bool
    status: str  # ok | failed (the check said no) | error (it raised) | timeout | crash
    value: dict | None
    log_tail: str

    @property
    def message(self) -> str:
        if self.value and self.value.get("message"):
            return str(self.value["message"])
        lines = [line for line in self.log_tail.strip().splitlines() if line.strip()]
        return lines[-1] if lines else self.status


def run_check(function: str, kwargs: dict, *, device: str = "cpu", timeout_s: float = 300) -> CheckResult:
    """Run `module:function(**kwargs, device=device)` in a worker and return what it returned."""
    result = sandbox_call(function, {**kwargs, "device": device}, device=device, timeout_s=timeout_s)
    if result.status == "ok":
        value = result.value if isinstance(result.value, dict) else {"ok": True, "value": result.value}
        ok = bool(value.get("ok"))
        return CheckResult(ok, "ok" if ok else "failed", value, result.log_tail)
    message = result.error_message or ""
    if result.error_type:
        message = f"{result.error_type}: {message}"
    log = "\n".join(part for part in (result.log_tail, result.traceback or "") if part)
    first_line = message.splitlines()[0] if message else result.status
    return CheckResult(False, result.status, {"ok": False, "message": first_line}, log)
