"""RayPool: the DevicePool's interface over Ray actors, one per GPU of a cluster (num_gpus=1), or on a
CPU-only cluster one per CPU slot, judging in the Triton interpreter.

An actor owns the same fork-server Worker the local pool uses and calls the same `verify_on`, so a
verdict does not depend on the executor. The task and the candidate travel as source text and are
written to a private folder on the actor's host; the verdict comes back as a dict to the
orchestrator, which alone writes the session's store. An actor that is lost (killed, its node gone,
stuck past the job's deadline) costs only its in-flight candidate: that one is retried once on
another actor or the lost actor's replacement.

`RAY_ADDRESS` names an existing cluster, whose nodes need torch and triton (harness/ itself is
shipped to them as a py_module of the job, when this pool connects; a caller that connected itself
passes `runtime_env={"py_modules": [harness dir]}` to ray.init); without it a local Ray instance is
started on 127.0.0.1.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.api import check_candidate_file, check_task_file, judge_grace_s, verify_on
from harness.pool import Evaluation
from harness.sandbox import REPLY_GRACE_S, STARTUP_TIMEOUT_S, Worker, owned_temp_prefix
from harness.verdict import HarnessInputError, Verdict

RETRIES_AFTER_LOSS = 1
# Past the judge's own limit, a fork server's start and the reply's grace, an actor counts as stuck.
DEADLINE_MARGIN_S = STARTUP_TIMEOUT_S + REPLY_GRACE_S
ACTOR_START_TIMEOUT_S = 300.0
_HARNESS_DIR = Path(__file__).resolve().parent


class EvaluationActor:
    """Runs inside a Ray worker process: one fork server, one device, jobs one at a time."""

    def __init__(self, device: str):
        self.device = device
        self.worker = Worker(device)
        # named for its process, as the fork server's: an actor killed without close() leaves it
        # to the next fork server's sweep (a test run left 31)
        self.scratch = tempfile.mkdtemp(prefix=owned_temp_prefix("ray"))

    def identity(self) -> dict:
        import ray
        context = ray.get_runtime_context()
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        # the host's numbering: inside the actor its one GPU is cuda:0, whichever it is
        device = f"cuda:{gpu_ids[0]}" if gpu_ids and self.device != "cpu" else self.device
        return {"executor": "ray", "host": socket.gethostname(), "node": context.get_node_id(),
                "device": device, "gpu_ids": gpu_ids,
                "actor": context.get_actor_id(), "pid": os.getpid()}

    def verify(self, files: dict[str, str], task_name: str, candidate_name: str, kwargs: dict) -> dict:
        """files: {name: source}; the verdict as a dict, or {"input_error": message} for bad input."""
        job_dir = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            for name, source in files.items():
                (job_dir / name).write_text(source)
            verdict = verify_on(self.worker, str(job_dir / task_name), str(job_dir / candidate_name), **kwargs)
            return verdict.to_dict()
        except HarnessInputError as error:
            return {"input_error": str(error)}
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def close(self) -> bool:
        self.worker.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        return True


@dataclass
class _Job:
    future: Evaluation
    task_path: str
    candidate_path: str
    kwargs: dict
    lost_on: list[dict] = field(default_factory=list)  # actors that died holding this job


def _lost_verdict(job: _Job) -> Verdict:
    where = ", ".join(f"{w.get('host')} {w.get('device')} (actor {w.get('actor')})" for w in job.lost_on)
    return Verdict(status="crash", summary=f"REJECTED (crash): the Ray worker evaluating it was lost "
                                           f"{len(job.lost_on)} times ({where}).")


def _ray_init(address: str | None, num_cpus: int | None) -> tuple[bool, bool]:
    """Connect (RAY_ADDRESS or `address`) or start a local instance, unless this process already did.
    Returns (local: the instance runs on this machine, owned: this call started or joined it)."""
    import ray
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    local = address == "local"
    if ray.is_initialized():
        return local, False
    if local:
        _init_in_owner_thread(address="local", num_cpus=num_cpus, include_dashboard=False,
                              _node_ip_address="127.0.0.1", log_to_driver=False)
    else:
        _check_reachable(address)
        # harness/ travels to the cluster's nodes with the job (Ray uploads directories only at this level).
        ray.init(address=address, runtime_env={"py_modules": [str(_HARNESS_DIR)]}, log_to_driver=False)
    return local, True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A host:port address that does not answer is a clear error now: Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise HarnessInputError(f"no Ray cluster answers at {address} (RAY_ADDRESS): {error}") from None


_owner_release = threading.Event()


def _init_in_owner_thread(**init_kwargs) -> None:
    """ray.init a local instance from a thread that lives until the instance is shut down.

    Ray ties the processes of a local instance to the thread that started them: shut down after that
    thread ended (a search round's thread, say), it leaves agent processes behind."""
    import ray
    started, failures = threading.Event(), []

    def own() -> None:
        try:
            ray.init(**init_kwargs)
        except BaseException as error:
            failures.append(error)
        started.set()
        if not failures:
            _owner_release.wait()

    _owner_release.clear()
    # The instance's processes inherit this environment: its workers import harness/ from where it is
    # (no runtime_env, which would need Ray's runtime-env agent). Restored once they are started.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_HARNESS_DIR.parent), saved]))
    try:
        threading.Thread(target=own, name="ray-owner", daemon=True).start()
        started.wait()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    if failures:
        raise failures[0]


class RayPool:
    """submit(task_path, candidate_path, **verify_kwargs) -> Evaluation, like DevicePool."""

    executor = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, cpu_workers: int = 2,
                 num_cpus: int | None = None):
        """workers: actors to start (default: one per GPU of the cluster; without GPUs, cpu_workers).
        num_cpus: CPUs of a local instance started here (default: Ray's own count)."""
        try:
            import ray
        except ImportError:
            raise HarnessInputError("the ray executor needs Ray: pip install 'akg-op[ray]'") from None
        self._ray = ray
        local, self._owns_ray = _ray_init(address, num_cpus)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        self.device = "cuda:0" if gpus else "cpu"  # inside an actor its one GPU is always cuda:0
        count = workers or (gpus or min(cpu_workers, int(ray.cluster_resources().get("CPU", 1))))
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self._actor_class = ray.remote(EvaluationActor).options(max_restarts=0, **resources)
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._slots: list[tuple | None] = [None] * count
        self._live = count
        self._closed = False
        started = [self._actor_class.remote(self.device) for _ in range(count)]
        try:
            identities = ray.get([actor.identity.remote() for actor in started], timeout=ACTOR_START_TIMEOUT_S)
        except BaseException:
            for actor in started:
                ray.kill(actor, no_restart=True)
            if self._owns_ray:
                ray.shutdown()
                _owner_release.set()
            raise
        self._slots = list(zip(started, identities))
        self._threads = [threading.Thread(target=self._serve, args=(slot,), daemon=True) for slot in range(count)]
        for thread in self._threads:
            thread.start()

    # -- what runs where ----------------------------------------------------------------------------
    def workers(self) -> list[dict]:
        with self._lock:
            return [identity for _, identity in filter(None, self._slots)]

    def actors(self) -> list:
        """The live actor handles (for tests and tools that need to reach one)."""
        with self._lock:
            return [actor for actor, _ in filter(None, self._slots)]

    # -- jobs ---------------------------------------------------------------------------------------
    def submit(self, task_path: str, candidate_path: str, **verify_kwargs) -> Evaluation:
        verify_kwargs.pop("device", None)  # the pool decides where a job runs
        future = Evaluation()
        self._jobs.put(_Job(future, task_path, candidate_path, verify_kwargs))
        return future

    def map(self, jobs: list[dict]) -> list[Verdict]:
        futures = [self.submit(**job) for job in jobs]
        return [future.result() for future in futures]

    def _serve(self, slot: int) -> None:
        ray = self._ray
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.lost_on and not job.future.set_running_or_notify_cancel():
                continue
            actor, identity = self._slots[slot]
            try:
                files, task_name, candidate_name = self._payload(job)
            except Exception as error:  # bad input reaches the submitter, as from the local pool
                job.future.set_exception(error)
                continue
            deadline = (float(job.kwargs.get("timeout_s", 120.0)) + DEADLINE_MARGIN_S
                        + judge_grace_s(self.device, job.kwargs.get("measure", True)))
            try:
                result = ray.get(actor.verify.remote(files, task_name, candidate_name, job.kwargs), timeout=deadline)
            except ray.exceptions.RayTaskError as error:  # the harness itself raised: as locally, say so
                job.future.set_exception(error)
                continue
            except ray.exceptions.RayError:  # the actor died, its node was lost, or it is stuck
                job.lost_on.append(identity)
                ray.kill(actor, no_restart=True)
                self._requeue_or_fail(job)
                if not self._replace(slot):
                    return
                continue
            if "input_error" in result:
                job.future.set_exception(HarnessInputError(result["input_error"]))
                continue
            job.future.worker = {**identity, **({"retried_after": job.lost_on} if job.lost_on else {})}
            job.future.set_result(Verdict.from_dict(result))

    @staticmethod
    def _payload(job: _Job) -> tuple[dict[str, str], str, str]:
        check_task_file(job.task_path)
        check_candidate_file(job.candidate_path)
        task, candidate = Path(job.task_path), Path(job.candidate_path)
        # The same file names as here: names a verdict quotes read the same whichever executor judged.
        candidate_name = candidate.name if candidate.name != task.name else "candidate_" + candidate.name
        files = {task.name: task.read_text(encoding="utf-8", errors="replace"),
                 candidate_name: candidate.read_text(encoding="utf-8", errors="replace")}
        return files, task.name, candidate_name

    def _requeue_or_fail(self, job: _Job) -> None:
        if len(job.lost_on) <= RETRIES_AFTER_LOSS and not self._closed:
            self._jobs.put(job)
        else:
            job.future.worker = {"executor": "ray", "lost": job.lost_on}
            job.future.set_result(_lost_verdict(job))

    def _replace(self, slot: int) -> bool:
        """A fresh actor in a lost one's place; False (the slot retires) when none can be started."""
        ray = self._ray
        if not self._closed:
            actor = self._actor_class.remote(self.device)
            try:
                identity = ray.get(actor.identity.remote(), timeout=ACTOR_START_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError):
                ray.kill(actor, no_restart=True)
            else:
                with self._lock:
                    self._slots[slot] = (actor, identity)
                return True
        with self._lock:
            self._slots[slot] = None
            self._live -= 1
            last = self._live == 0
        if last:  # nobody is left to take the queued jobs: they fail rather than wait forever
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    return False
                if job is not None:
                    job.lost_on.append({"executor": "ray", "actor": None, "host": None, "device": self.device})
                    job.future.worker = {"executor": "ray", "lost": job.lost_on}
                    job.future.set_result(_lost_verdict(job))
        return False

    def close(self) -> None:
        """Stop the actors (their fork servers with them); shut Ray down if this pool started it."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        ray = self._ray
        if not ray.is_initialized():  # any call now would start a fresh instance
            return
        for actor in self.actors():
            try:
                ray.get(actor.close.remote(), timeout=30)
            except ray.exceptions.RayError:
                pass
            ray.kill(actor, no_restart=True)
        if self._owns_ray:
            ray.shutdown()
            _owner_release.set()

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
