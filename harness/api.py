"""Public entry points: verify() a candidate, validate_task() a task. Both run the work in a sandboxed
worker; failures of the worker become verdicts, and only bad input raises (HarnessInputError)."""
from __future__ import annotations

import ast
import threading
from pathlib import Path

from harness.sandbox import Worker, resolve_device, shared_worker
from harness.secrets import redact, redact_tree
from harness.verdict import HarnessInputError, SandboxResult, TaskCheck, Verdict

JUDGE_GRACE_S = 10.0  # the judge enforces the candidate's timeout itself and needs a moment to write the verdict
# On a GPU, once the candidate's process has ended, the judge times eager and torch.compile itself
# (compiling included): its own work, as long as the task's reference makes it, never the
# candidate's time. A 196-ms reference (a grouped 3-D transposed convolution at benchmark size)
# took 109 s of it, and a judge killed at the candidate's 120 s plus grace rejected a kernel 19x
# faster than eager as a timeout. The job's backstop leaves the baselines this much more.
BASELINES_ALLOWANCE_S = 240.0
# The pool's threads check their jobs' files at once, and CPython 3.11's ast module keeps its
# recursion depth in interpreter-wide state: a parse interleaved with another's (a thread switch
# while one builds its tree) can fail with "SystemError: AST constructor recursion depth mismatch"
# (seen once in a full test run, in the pool's crash-and-hang test; reported against 3.11 in
# threaded programs, CPython gh-106905). One parse at a time, for every caller in this process.
_PARSE_LOCK = threading.Lock()


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """ast.parse, safe to call from several threads at once (see _PARSE_LOCK)."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename)


def _defined_names(path: str, role: str) -> set[str] | None:
    """Top-level names a source file defines; None when it does not parse."""
    file = Path(path)
    if not file.is_file():
        raise HarnessInputError(f"{role} file not found: {path}")
    source = file.read_text(encoding="utf-8", errors="replace")
    try:
        tree = parse_python(source, filename=path)
    except SyntaxError:
        return None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def check_task_file(task_path: str) -> None:
    names = _defined_names(task_path, "task")
    if names is None:
        raise HarnessInputError(f"task file does not parse: {task_path}")
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if n not in names]
    if missing:
        raise HarnessInputError(f"task file {task_path} defines no {', '.join(missing)}")


def check_candidate_file(candidate_path: str) -> None:
    names = _defined_names(candidate_path, "candidate")
    # A candidate that does not parse is a compile_error verdict, not bad input.
    if names is not None and "ModelNew" not in names:
        raise HarnessInputError(f"candidate file {candidate_path} defines no ModelNew")


def judge_grace_s(device: str, measure: bool) -> float:
    """How long a judge job may run past the candidate's timeout before its worker kills it."""
    return JUDGE_GRACE_S + (BASELINES_ALLOWANCE_S if measure and device != "cpu" else 0.0)


def _failed_job_verdict(result: SandboxResult, device: str, timeout_s: float, grace_s: float) -> Verdict:
    """Verdict for a job that produced no report: it hung, died or the judge itself raised."""
    if result.status == "timeout":  # the backstop: the judge stops a slow candidate itself, this job outlasted the grace too
        status, reason = "timeout", (f"no result within {timeout_s + grace_s:g} s (the candidate's limit {timeout_s:g} s, "
                                     f"then the judge's own reference runs and baselines; infinite loop or far too slow?)")
    elif result.status == "crash" and result.signal_name == "SIGKILL":
        status, reason = "oom", "the worker was killed (SIGKILL), most likely for using too much memory"
    elif result.status == "crash":
        how = f"was killed by {result.signal_name}" if result.signal_name else f"exited with code {result.exit_code}"
        status, reason = "crash", f"the worker process {how} before reporting (segfault, abort or os._exit?)"
    else:
        status, reason = "crash", f"the judge failed: {result.error_type}: {result.error_message}"
    log_tail = result.log_tail or ""
    if result.traceback:
        log_tail = (log_tail + "\n" + result.traceback).strip()
    return Verdict(status=status, summary=f"REJECTED ({status}): {reason}.", log_tail=log_tail[-3000:],
                   device=device, flags=["cuda_fault"] if device != "cpu" and result.status == "crash" else [])


def verify_on(worker: Worker, task_path: str, candidate_path: str, *, dsl: str = "triton_cuda",
              timeout_s: float = 120.0, trials: int = 5, measure: bool = True,
              memory_limit_mb: int | None = None, seed: int | None = None,
              reference_timings: dict | None = None) -> Verdict:
    """verify() on a given worker (the pool's)."""
    check_task_file(task_path)
    check_candidate_file(candidate_path)
    kwargs = dict(task_path=str(Path(task_path).resolve()), candidate_path=str(Path(candidate_path).resolve()),
                  device=worker.device, dsl=dsl, trials=trials, measure=measure, seed=seed,
                  memory_limit_mb=memory_limit_mb, reference_timings=reference_timings, timeout_s=timeout_s)
    grace_s = judge_grace_s(worker.device, measure)
    result = worker.call("harness.judge:verify_job", kwargs, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb,
                         grace_s=grace_s)
    if not result.ok:
        verdict = _failed_job_verdict(result, worker.device, timeout_s, grace_s)
    else:
        verdict = Verdict.from_dict(result.value)
        verdict.log_tail = result.log_tail
    # Whatever a candidate printed or raised, no secret of this process leaves the harness.
    verdict = Verdict.from_dict(redact_tree(verdict.to_dict()))
    if "cuda_fault" in verdict.flags:
        worker.restart_needed()  # a fresh server before the next job, whatever the fault left behind
    return verdict


def verify(task_path: str, candidate_path: str, *, device: str = "auto", dsl: str = "triton_cuda",
           timeout_s: float = 120.0, trials: int = 5, measure: bool = True,
           memory_limit_mb: int | None = None, seed: int | None = None,
           reference_timings: dict | None = None) -> Verdict:
    """Judge candidate_path's ModelNew against task_path's Model. Raises HarnessInputError only for
    bad input (missing file, no Model/ModelNew, unknown device); every other failure is a Verdict.
    reference_timings: eager/compile timings from an earlier job of the same task and device, reused
    instead of re-timed (the search workflows time their reference once per run).
    seed: the base seed of the judge's inputs; None (the default) draws a fresh one per job, so a
    candidate cannot recognise the judge's inputs; the verdict records the one used.
    memory_limit_mb: on CPU the address space a job may map beyond the pre-loaded runtime (default
    8192); on a GPU the share of device memory the job's allocator may use (default: no limit)."""
    worker = shared_worker(resolve_device(device))
    return verify_on(worker, task_path, candidate_path, dsl=dsl, timeout_s=timeout_s, trials=trials,
                     measure=measure, memory_limit_mb=memory_limit_mb, seed=seed,
                     reference_timings=reference_timings)


def validate_task(task_path: str, *, device: str = "auto", timeout_s: float = 60.0) -> TaskCheck:
    """Check a task file: it loads, runs, is deterministic, takes random inputs, gives a usable output."""
    check_task_file(task_path)
    worker = shared_worker(resolve_device(device))
    result = worker.call("harness.judge:validate_job",
                         {"task_path": str(Path(task_path).resolve()), "device": worker.device},
                         timeout_s=timeout_s)
    if result.ok:
        return TaskCheck(**redact_tree(result.value), log_tail=redact(result.log_tail))
    problem = redact(f"checking the task failed ({result.status}): {result.error_message or result.signal_name}")
    return TaskCheck(ok=False, problems=[problem], log_tail=redact(result.log_tail))
