"""DevicePool: one worker per visible GPU (or N CPU workers); jobs queued, results in order.

Every executor hands back an `Evaluation`: a Future of the Verdict that also names the worker that
made it (host, device, process), so a search can record where each candidate ran.
"""
from __future__ import annotations

import queue
import socket
import threading
from concurrent.futures import Future

from harness.api import verify_on
from harness.sandbox import Worker, resolve_device
from harness.verdict import Verdict

class Evaluation(Future):
    """A Future[Verdict]; `worker` (set before the result) says which worker evaluated it."""

    worker: dict | None = None


def default_devices(cpu_workers: int) -> list[str]:
    import torch
    if torch.cuda.is_available():
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return ["cpu"] * cpu_workers


def _server_pid(worker: Worker) -> int | None:
    process = getattr(worker, "_process", None)  # the fork server the worker's jobs fork from
    return process.pid if process is not None else None


class DevicePool:
    """Each device gets a worker (its own fork server) and a thread that feeds it queued jobs.

    A candidate runs in a child forked from its worker's server: a crash or hang kills that child
    only; a lost server (or one a CUDA fault left unusable) is restarted before the worker's next job."""

    executor = "local"

    def __init__(self, devices: list[str] | None = None, cpu_workers: int = 2):
        self.devices = [resolve_device(d) for d in devices] if devices else default_devices(cpu_workers)
        self._jobs: queue.Queue = queue.Queue()
        self._workers = [Worker(device) for device in self.devices]
        self._host = socket.gethostname()
        self._threads = [threading.Thread(target=self._serve, args=(index, worker), daemon=True)
                         for index, worker in enumerate(self._workers)]
        for thread in self._threads:
            thread.start()

    def _identity(self, index: int, worker: Worker, pid: int | None) -> dict:
        return {"executor": "local", "host": self._host, "device": worker.device, "worker": f"local-{index}",
                "pid": pid}

    def workers(self) -> list[dict]:
        """Who evaluates: one entry per worker (pid: its fork server, None until its first job)."""
        return [self._identity(i, w, _server_pid(w)) for i, w in enumerate(self._workers)]

    def _serve(self, index: int, worker: Worker) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, task_path, candidate_path, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            pid_before = _server_pid(worker)
            try:
                verdict = verify_on(worker, task_path, candidate_path, **kwargs)
                # The server that ran the job: after a CUDA fault it is already stopped, so the one before.
                future.worker = self._identity(index, worker, _server_pid(worker) or pid_before)
                future.set_result(verdict)
            except BaseException as error:  # bad input (HarnessInputError) reaches the submitter
                future.set_exception(error)

    def submit(self, task_path: str, candidate_path: str, **verify_kwargs) -> Evaluation:
        verify_kwargs.pop("device", None)  # the pool decides where a job runs
        future = Evaluation()
        self._jobs.put((future, task_path, candidate_path, verify_kwargs))
        return future

    def map(self, jobs: list[dict]) -> list[Verdict]:
        """jobs: [{"task_path": ..., "candidate_path": ..., **verify_kwargs}]; verdicts in job order."""
        futures = [self.submit(**job) for job in jobs]
        return [future.result() for future in futures]

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> "DevicePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
