"""Fork server: a process that pre-imports torch and triton once, then forks a fresh child per job.

Run as `python -m harness.forkserver DEVICE`. It never touches CUDA itself, so every child can
initialise its own CUDA context; a child that segfaults, hangs or corrupts its context takes nothing
else with it. Protocol (one JSON object per line): the client writes a job
{"target", "kwargs", "job_dir", "timeout_s", "memory_limit_mb"}; the server answers
{"exit_code", "signal", "timed_out", "wall_s", "result"} once the child is gone. The child hands its
result back through a pipe that only it holds (a candidate process it forks closes its copy first,
so nothing a candidate writes can become a result), and writes its stdout/stderr to
job_dir/stdout.txt and stderr.txt. The server is a subreaper: after each job every process the job
left behind, daemons included, is killed.
"""
from __future__ import annotations

import faulthandler
import importlib
import json
import os
import resource
import select
import signal
import sys
import time
import traceback


def _apply_memory_limit(memory_limit_mb: int) -> None:
    # The limit counts what the job maps beyond the pre-loaded runtime (torch alone maps about 1 GB).
    from harness import isolation
    limit = isolation.mapped_bytes() + memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_child(job: dict, protocol_fds: tuple[int, ...], result_fd: int) -> None:
    """Body of the forked child: isolate, run the target, write the result to result_fd. Never returns."""
    os.setsid()  # own process group: the server kills the whole group on timeout
    for fd in protocol_fds:
        os.close(fd)
    job_dir = job["job_dir"]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        log = os.open(os.path.join(job_dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, fd)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    faulthandler.enable(file=sys.stderr)  # a segfault still leaves a Python traceback in the log
    if job.get("memory_limit_mb"):
        _apply_memory_limit(int(job["memory_limit_mb"]))
    try:
        module_name, function_name = job["target"].split(":")
        function = getattr(importlib.import_module(module_name), function_name)
        outcome = {"ok": True, "value": function(**job.get("kwargs", {}))}
    except BaseException as error:  # SystemExit and KeyboardInterrupt from user code are results too
        outcome = {"ok": False, "error_type": type(error).__name__, "error_message": str(error)[:2000],
                   "traceback": traceback.format_exc()[-6000:]}
    try:
        payload = json.dumps(outcome, default=repr)
    except BaseException as error:
        payload = json.dumps({"ok": False, "error_type": type(error).__name__,
                              "error_message": f"result is not JSON-serialisable: {error}"[:2000]})
    with os.fdopen(result_fd, "w") as result_pipe:
        result_pipe.write(payload)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


PARENT_CHECK_S = 0.2  # how often a waiting server looks whether its orchestrator is still there


def _wait(pid: int, timeout_s: float, result_fd: int) -> tuple[int, bool, bytes]:
    """Wait for the child while draining its result pipe; on timeout kill its whole process group.
    Returns (wait status, timed_out, result bytes). When the orchestrator that started this server
    dies meanwhile (killed, timed out), the job dies with it: a judge left running would hold its
    gigabytes of device memory until its own timeout, under whatever runs next. The wait wakes the
    moment the child writes or exits (a pidfd), not on a polling period: a poll that backed off to
    50 ms cost a 0.2 s judgement 25 ms on average."""
    deadline = time.monotonic() + timeout_s
    parent = os.getppid()
    chunks = []
    os.set_blocking(result_fd, False)
    exited = _exit_notifier(pid)
    watched = [result_fd] + ([exited] if exited is not None else [])
    pause = 0.002
    try:
        while True:
            if not _drain(result_fd, chunks) and result_fd in watched:
                watched.remove(result_fd)  # end of file: only the child's exit is left to wait for
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                _drain(result_fd, chunks)
                return status, False, b"".join(chunks)
            left = deadline - time.monotonic()
            if left < 0:
                _kill_group(pid)
                return os.waitpid(pid, 0)[1], True, b""
            if os.getppid() != parent:
                from harness import isolation
                _kill_group(pid)
                isolation.kill_descendants()
                os._exit(1)
            if exited is not None:
                select.select(watched, [], [], min(PARENT_CHECK_S, left))
            else:  # no pidfd (a kernel before 5.3): poll
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
    finally:
        if exited is not None:
            os.close(exited)


def _exit_notifier(pid: int) -> int | None:
    """A descriptor that becomes readable when process `pid` exits, or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _drain(fd: int, chunks: list) -> bool:
    """Read what is there; False at end of file."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        chunks.append(chunk)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children_can_use_cuda() -> bool:
    """Fork a probe: torch marks children 'in bad fork' once the parent has touched CUDA."""
    import torch
    pid = os.fork()
    if pid == 0:
        os._exit(1 if getattr(torch._C, "_cuda_isInBadFork", lambda: False)() else 0)
    return os.waitpid(pid, 0)[1] == 0


def _warm_up(device: str) -> bool:
    """Pre-load what jobs use lazily. For GPU servers CUDA stays untouched: the device count is
    answered by NVML and lazy CUDA init is refused while warming up; a probe confirms it, and
    a server whose children could not use CUDA restarts cold. Returns whether the warm-up stayed."""
    import torch
    import harness.judge
    if device == "cpu":
        harness.judge.warm_up(device)
        return True
    real_count, real_init = torch._C.__dict__.get("_cuda_getDeviceCount"), torch.cuda._lazy_init

    def refuse_cuda_init():
        raise RuntimeError("the fork server must not initialise CUDA")
    try:
        if real_count is not None:
            torch._C._cuda_getDeviceCount = lambda: max(torch.cuda._device_count_nvml(), 0)
        torch.cuda._lazy_init = refuse_cuda_init
        harness.judge.warm_up(device)
    except Exception as error:
        print(f"warm-up skipped: {error}", file=sys.stderr)
    finally:
        if real_count is not None:
            torch._C._cuda_getDeviceCount = real_count
        torch.cuda._lazy_init = real_init
    return _children_can_use_cuda()


def serve(device: str, warm: bool = True) -> None:
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # availability checks must not touch CUDA
    # Tiny compile jobs: a pool of inductor compile workers per child costs more than it saves.
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    # The protocol gets private descriptors; stray prints of the server go to stderr.
    protocol_in = os.fdopen(os.dup(0), "r")
    protocol_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import torch  # pre-import: the point of the server
    # One intra-op thread: jobs run side by side in a pool, and an OpenMP pool started here would
    # not survive the fork.
    torch.set_num_threads(1)
    if warm:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
        if not _warm_up(device):
            # Something touched CUDA: start over as a cold server that pre-imports torch alone.
            os.dup2(protocol_in.fileno(), 0)
            os.dup2(protocol_out.fileno(), 1)
            os.execv(sys.executable, [sys.executable, "-m", "harness.forkserver", device, "--cold"])
    from harness import isolation
    isolation.become_subreaper()
    isolation.SWITCH_USER = isolation.privilege_drop_works()
    protocol_out.write("ready warm\n" if warm else "ready cold\n")
    protocol_out.flush()
    for line in protocol_in:
        job = json.loads(line)
        started = time.monotonic()
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(result_read)
                _run_child(job, (protocol_in.fileno(), protocol_out.fileno()), result_write)
            finally:
                os._exit(70)
        os.close(result_write)
        status, timed_out, result = _wait(pid, float(job["timeout_s"]), result_read)
        os.close(result_read)
        _kill_group(pid)
        isolation.kill_descendants()  # whatever the job left behind, setsid'd daemons included
        reply = {
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timed_out": timed_out,
            "wall_s": round(time.monotonic() - started, 4),
            "result": result.decode("utf-8", errors="replace") if result else None,
        }
        protocol_out.write(json.dumps(reply) + "\n")
        protocol_out.flush()


if __name__ == "__main__":
    serve(sys.argv[1], warm="--cold" not in sys.argv)
