"""Client side of the fork server: run `module:function(**kwargs)` isolated, get a SandboxResult.

A Worker owns one fork server for one device. Jobs run one at a time per worker; each runs in a fresh
forked child with a wall-clock limit, its own process group and (on CPU) an address-space limit.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.isolation import hide_from_same_user
from harness.secrets import worker_environment
from harness.verdict import HarnessInputError, SandboxResult

LOG_TAIL_CHARS = 3000
STARTUP_TIMEOUT_S = 180.0
REPLY_GRACE_S = 30.0  # the server kills a late child itself; this only guards against a stuck server
DEFAULT_CPU_MEMORY_LIMIT_MB = 8192
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def _tail(path: Path, limit: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return ("…" if size > limit else "") + text


def owned_temp_prefix(kind: str) -> str:
    """akg-{kind}-{this process's pid}-: the name says whose it is, so that a later process can
    remove what a killed one left (SIGKILL runs no cleanup)."""
    return f"akg-{kind}-{os.getpid()}-"


def _remove_orphans() -> None:
    """Remove the fork-server folders, logs, job folders and Ray actors' scratch folders of
    processes that no longer exist."""
    root = Path(tempfile.gettempdir())
    for entry in [e for kind in ("forkserver", "job", "ray") for e in root.glob(f"akg-{kind}-*")]:
        pid = entry.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive: its owner removes it
        except ProcessLookupError:
            pass  # gone
        except PermissionError:
            continue  # another user's process
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _server_environment(device: str) -> dict[str, str]:
    env = worker_environment()  # allow-listed: no keys, tokens or proxies reach a worker
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
        # A CPU worker never touches a GPU: without this, a library that asks whether CUDA is there
        # initialises it, which fails under the job's address-space limit ("out of memory").
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env.pop("TRITON_INTERPRET", None)
        env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
        index = device.split(":")[1] if ":" in device else "0"
        # One GPU per server: inside the job the device is always cuda:0.
        visible = env.get("CUDA_VISIBLE_DEVICES")
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[int(index)] if visible else index
    return env


class Worker:
    """One fork server bound to one device ("cpu" or "cuda:N")."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._process: subprocess.Popen | None = None
        self.warm = False
        self._lock = threading.Lock()

    # -- server lifecycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        # Candidates run below this process: close its /proc entries (environment, memory) to them.
        hide_from_same_user()
        _remove_orphans()
        self._server_log = tempfile.NamedTemporaryFile(prefix=owned_temp_prefix("forkserver"), suffix=".log",
                                                       delete=False)
        # An empty working directory: `python -m` puts it first on sys.path, and the user's folder
        # (which may hold a package called harness, torch, ...) must never shadow ours.
        self._server_dir = tempfile.mkdtemp(prefix=owned_temp_prefix("forkserver"))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.forkserver", "cpu" if self.device == "cpu" else "cuda"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._server_log, cwd=self._server_dir,
            env=_server_environment(self.device), start_new_session=True, text=True,
        )
        line = self._read_line(STARTUP_TIMEOUT_S) or ""
        self.warm = line == "ready warm"  # pre-loaded machinery kept (see forkserver._warm_up)
        if not line.startswith("ready"):
            log = _tail(Path(self._server_log.name))
            self.restart_needed()
            raise RuntimeError(f"fork server for {self.device} did not start: {log}")

    def _read_line(self, timeout_s: float) -> str | None:
        stdout = self._process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        if not ready:
            return None
        line = stdout.readline()
        return line.strip() if line else None

    def restart_needed(self) -> None:
        """Stop the server; the next job starts a fresh one (after a CUDA fault, a lost server...)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()
        os.unlink(self._server_log.name)
        shutil.rmtree(self._server_dir, ignore_errors=True)

    close = restart_needed

    # -- jobs ---------------------------------------------------------------------------------------
    def call(self, target: str, kwargs: dict, *, timeout_s: float = 120.0,
             memory_limit_mb: int | None = None, grace_s: float = 0.0) -> SandboxResult:
        """grace_s: time the job gets past timeout_s before the server kills it, for jobs that enforce
        timeout_s themselves and report it (the judge)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.restart_needed()
                try:
                    self._start()
                except RuntimeError as error:
                    return SandboxResult(status="crash", error_message=str(error)[-2000:])
            job_dir = Path(tempfile.mkdtemp(prefix=owned_temp_prefix("job")))
            try:
                return self._run(target, kwargs, job_dir, timeout_s, memory_limit_mb, grace_s)
            finally:
                shutil.rmtree(job_dir, ignore_errors=True)

    def _run(self, target, kwargs, job_dir: Path, timeout_s, memory_limit_mb, grace_s) -> SandboxResult:
        if self.device != "cpu":
            memory_limit_mb = None  # CUDA reserves huge virtual ranges; an AS limit breaks it
        elif memory_limit_mb is None:
            memory_limit_mb = DEFAULT_CPU_MEMORY_LIMIT_MB
        job = {"target": target, "kwargs": kwargs, "job_dir": str(job_dir),
               "timeout_s": timeout_s + grace_s, "memory_limit_mb": memory_limit_mb}
        started = time.monotonic()
        try:
            self._process.stdin.write(json.dumps(job) + "\n")
            self._process.stdin.flush()
            line = self._read_line(timeout_s + grace_s + REPLY_GRACE_S)
        except (BrokenPipeError, OSError):
            line = None
        log_tail = self._log_tail(job_dir)
        if line is None:
            self.restart_needed()
            return SandboxResult(status="crash", error_message="the worker process was lost",
                                 wall_s=time.monotonic() - started, log_tail=log_tail)
        reply = json.loads(line)
        signal_name = signal.Signals(reply["signal"]).name if reply["signal"] else None
        common = dict(exit_code=reply["exit_code"], signal_name=signal_name, wall_s=reply["wall_s"],
                      log_tail=log_tail)
        if reply["timed_out"]:
            return SandboxResult(status="timeout", error_message=f"no result within {timeout_s:g} s", **common)
        try:
            outcome = json.loads(reply["result"])
            if not isinstance(outcome, dict):
                raise ValueError("result is not an object")
        except (TypeError, ValueError):
            how = f"killed by {signal_name}" if signal_name else f"exited with code {reply['exit_code']}"
            return SandboxResult(status="crash", error_message=f"the worker {how} before writing a result",
                                 **common)
        if outcome["ok"]:
            return SandboxResult(status="ok", value=outcome["value"], **common)
        return SandboxResult(status="error", error_type=outcome["error_type"],
                             error_message=outcome["error_message"], traceback=outcome.get("traceback"),
                             **common)

    @staticmethod
    def _log_tail(job_dir: Path) -> str:
        parts = []
        for name in ("stdout.txt", "stderr.txt"):
            # faulthandler ends with a long list of extension modules: noise for a fixer
            text = "\n".join(line for line in _tail(job_dir / name).splitlines()
                              if not line.startswith("Extension modules:")).strip()
            if text:
                parts.append(f"[{name[:-4]}]\n{text}")
        return "\n".join(parts)


# Shared workers for one-off calls (verify(), sandbox_call()), one per device, closed at exit.
_shared_workers: dict[str, Worker] = {}
_shared_lock = threading.Lock()


def shared_worker(device: str) -> Worker:
    with _shared_lock:
        if device not in _shared_workers:
            _shared_workers[device] = Worker(device)
        return _shared_workers[device]


@atexit.register
def _close_shared_workers() -> None:
    for worker in _shared_workers.values():
        worker.close()


def resolve_device(device: str) -> str:
    """"auto" → "cuda:0" when a GPU is visible, else "cpu"; "cuda" → "cuda:0". HarnessInputError for
    a device that does not exist here."""
    import torch
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda":
        device = "cuda:0"
    if not (device.startswith("cuda:") and device[5:].isdigit()):
        raise HarnessInputError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if int(device[5:]) >= torch.cuda.device_count():
        raise HarnessInputError(f"device {device} is not available here ({torch.cuda.device_count()} CUDA devices)")
    return device


def sandbox_call(target: str, kwargs: dict, *, device: str = "cpu", timeout_s: float = 120.0,
                 memory_limit_mb: int | None = None) -> SandboxResult:
    """Run `module:function(**kwargs)` in an isolated child and return its JSON-able result.
    Never raises for failures of the job itself: the result's status says what happened."""
    worker = shared_worker(resolve_device(device))
    return worker.call(target, kwargs, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb)
