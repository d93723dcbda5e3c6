"""Run a check function in a separate Python process, never in the orchestrator.

`run_check("integration.checks:check_extracted", {...})` starts `python -m integration.worker`,
passes the keyword arguments as JSON on stdin and reads the JSON result back from a file. A crash,
hang or CUDA fault in user or generated code stays in that process: on timeout its whole process
group is killed. (When the harness sandbox is available, `run_check` is the one place to switch.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds `integration/`
LOG_TAIL_CHARS = 4000


@dataclass
class CheckResult:
    ok: bool
    status: str  # ok | failed | error | timeout | crash
    value: dict | None
    log_tail: str

    @property
    def message(self) -> str:
        if self.value and self.value.get("message"):
            return str(self.value["message"])
        lines = [line for line in self.log_tail.strip().splitlines() if line.strip()]
        return lines[-1] if lines else self.status


def run_check(function: str, kwargs: dict, *, device: str = "cpu", timeout_s: float = 300) -> CheckResult:
    """Run `module:function(**kwargs)` in a worker process and return what it returned."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"  # Triton kernels run on CPU tensors in the interpreter
    with tempfile.TemporaryDirectory(prefix="akg_op_check_") as scratch:
        result_file = Path(scratch) / "result.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "integration.worker", function, str(result_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=scratch, env=env, start_new_session=True, text=True,
        )
        try:
            log, _ = process.communicate(json.dumps({**kwargs, "device": device}), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            log, _ = process.communicate()
            return CheckResult(False, "timeout", None, f"{(log or '')[-LOG_TAIL_CHARS:]}\ntimed out after {timeout_s}s")
        log = (log or "")[-LOG_TAIL_CHARS:]
        if not result_file.exists():
            return CheckResult(False, "crash", None, f"{log}\nworker exited with code {process.returncode}")
        payload = json.loads(result_file.read_text())
    if "error" in payload:
        return CheckResult(False, "error", {"ok": False, "message": payload["error"]}, log + payload["traceback"])
    value = payload["value"]
    ok = bool(value.get("ok")) if isinstance(value, dict) else True
    return CheckResult(ok, "ok" if ok else "failed", value, log)


def _main(function: str, result_path: str) -> None:
    module_name, _, attribute = function.partition(":")
    kwargs = json.loads(sys.stdin.read())
    try:
        module = __import__(module_name, fromlist=[attribute])
        value = getattr(module, attribute)(**kwargs)
        payload = {"value": value}
    except BaseException as exc:  # everything is reported, nothing escapes the worker
        payload = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                   "traceback": traceback.format_exc()[-LOG_TAIL_CHARS:]}
    Path(result_path).write_text(json.dumps(payload, default=str))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
