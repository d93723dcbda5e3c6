"""DevicePool: one worker per visible GPU (or N CPU workers); jobs queued, results in order."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from harness.api import verify_on
from harness.sandbox import Worker, resolve_device
from harness.verdict import Verdict


def default_devices(cpu_workers: int) -> list[str]:
    import torch
    if torch.cuda.is_available():
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return ["cpu"] * cpu_workers


class DevicePool:
    """Each device gets a worker (its own fork server) and a thread that feeds it queued jobs."""

    def __init__(self, devices: list[str] | None = None, cpu_workers: int = 2):
        self.devices = [resolve_device(d) for d in devices] if devices else default_devices(cpu_workers)
        self._jobs: queue.Queue = queue.Queue()
        self._workers = [Worker(device) for device in self.devices]
        self._threads = [threading.Thread(target=self._serve, args=(worker,), daemon=True)
                         for worker in self._workers]
        for thread in self._threads:
            thread.start()

    def _serve(self, worker: Worker) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, task_path, candidate_path, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(verify_on(worker, task_path, candidate_path, **kwargs))
            except BaseException as error:  # bad input (HarnessInputError) reaches the submitter
                future.set_exception(error)

    def submit(self, task_path: str, candidate_path: str, **verify_kwargs) -> "Future[Verdict]":
        verify_kwargs.pop("device", None)  # the pool decides where a job runs
        future: Future = Future()
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
