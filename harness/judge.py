"""The judge: the job that runs in a sandboxed child of the fork server and writes the verdict.

The judge never imports candidate code. Its first act is to fork the candidate process (before
CUDA is touched, so both can use the GPU); from then on it talks to it only through a channel
(harness.channel), sending inputs and taking back outputs, which it copies at once and compares
with its own reference. Checks that must run inside the candidate's process (the op census, the
ghost replays) come back as claims the judge evaluates itself; everything else (correctness on
fresh seeds and on shifted/scaled/special inputs, a second shape, persistence of earlier outputs,
aliasing, the outputs of the timed calls) is checked from outside.

This module holds the judge's state and its side of the channel (Judge), and the order of the
phases (verify_job). The phases themselves are functions of the Judge, in the module named by
what they check: harness.trials (correctness and persistence, with harness.float64_opinion),
harness.own_work (op census and ghost replays) and harness.timing_check (timing: the candidate's,
then, its process gone, eager and torch.compile).
"""
from __future__ import annotations

import functools
import os
import platform
import secrets
import time

import torch

from harness import compare, contention, inputs as judge_inputs, isolation, kernel_cache, memory, timing_check
from harness.anticheat import TorchOps, triton_launches
from harness.candidate_process import CandidateProcess
from harness.errors import Rejection, error_text, is_cuda_fault
from harness.inputs import map_tensors
from harness.own_work import check_own_work
from harness.task_check import validate_job  # noqa: F401  (the job harness.validate_task runs)
from harness.task_loading import load_task
from harness.tensor_values import clone, tensors
from harness.trials import check_final_persistence, check_trials, check_variants


class Judge:
    """What one judgement knows (the task, its reference, the candidate process, the report) and
    the judge's side of the channel to the candidate; the check phases take it as their argument."""

    def __init__(self, task_path, candidate_path, device, dsl, trials, measure, seed, memory_limit_mb):
        self.task_path, self.candidate_path = task_path, candidate_path
        self.on_gpu = device != "cpu"
        self.device = torch.device("cuda" if self.on_gpu else "cpu")
        self.dsl, self.trials, self.measure = dsl, max(trials, 1), measure
        self.seed = seed if seed is not None else secrets.randbits(31)
        self.memory_limit_mb = memory_limit_mb
        self.reference_timings: dict | None = None
        self.candidate: CandidateProcess | None = None
        self.reference_ops: set[str] = set()
        self.candidate_ops: set[str] = set()
        self.kernel_cache: str | None = None
        self.last_float64_truth = None  # (inputs, their float64 evaluation): the last one asked for
        self.staged_view = None  # GPU: the judge's view of the candidate's input buffers of the last call
        # Set by the trials, for the later phases: trial 0's seed (the ghost replays draw its inputs
        # again), how many outputs the reference returns and which of them are views of inputs,
        # and the last trial's outputs with when they were taken (for the final persistence check).
        self.first_seed: int | None = None
        self.output_count = 0
        self.reference_aliases: set[int] = set()
        self.last_trial_output = None  # its content_digest
        self.last_trial_seen = 0.0
        self.digest_key = secrets.randbits(62)  # the earlier outputs' digests: unknown to the candidate
        self.report = {"device": device, "trials": 0, "flags": [], "torch_ops_left": [], "allowed_leftovers": [],
                       "seed": self.seed, "triton_launches": 0,
                       "versions": {"torch": torch.__version__, "triton": _triton_version(),
                                    "python": platform.python_version()}}

    def sync(self):
        if self.on_gpu:
            torch.cuda.synchronize()

    # -- setting up ------------------------------------------------------------------------------------
    def load(self, candidate: CandidateProcess):
        self.candidate = candidate
        self.report["sandbox"] = candidate.sandbox_notes or [
            "isolated: own process, no network, read-only filesystem, no privileges"]
        self.report["device_name"] = torch.cuda.get_device_name(0) if self.on_gpu \
            else f"{platform.processor() or platform.machine()} CPU (Triton interpreter)"
        if self.on_gpu and self.memory_limit_mb:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, self.memory_limit_mb * 2**20 / total))
        try:
            self.task, self.report["shrunk"] = load_task(self.task_path, shrink=not self.on_gpu)
            # before any real allocation: a task that cannot fit stops here with the numbers
            self.report["memory"] = memory.job_memory(self.task, self.on_gpu, bool(self.report["shrunk"]))
            self.init_inputs = self.task.get_init_inputs()
            torch.manual_seed(self.seed)
            with torch.device(self.device):  # parameters made where they live, not on the host first
                self.reference = self.task.Model(*self.init_inputs).to(self.device).eval()
        except memory.TaskTooLarge as error:
            raise Rejection("oom", str(error)) from None
        except Exception as error:
            raise Rejection("invalid", f"the task does not load: {error_text(error)}") from None
        self.send_model("loading the candidate")

    def send_model(self, what: str):
        state = {k: v.detach().cpu() for k, v in self.reference.state_dict().items()}
        self.candidate.request(what, cmd="load", source=self.source,
                               filename=os.path.basename(self.candidate_path) or "candidate.py",
                               init_inputs=list(self.init_inputs), state_dict=state)

    def read_candidate(self) -> str | None:
        """Read the candidate's source; returns its own kernel cache directory (GPU only: the
        interpreter compiles nothing)."""
        try:
            with open(self.candidate_path, encoding="utf-8", errors="replace") as handle:
                self.source = handle.read()
        except OSError as error:
            raise Rejection("invalid", f"the candidate file cannot be read: {error}") from None
        if self.on_gpu:
            self.kernel_cache = kernel_cache.source_cache_dir(self.source, _triton_version())
        return self.kernel_cache

    def run_reference(self, inputs, record_ops: bool = False):
        ops = TorchOps(triton_launches, count_inside_launches=True) if record_ops else None
        with torch.no_grad():
            if ops is not None:
                with ops:
                    output = self.reference(*inputs)
                self.reference_ops |= ops.ops
            else:
                output = self.reference(*inputs)
        self.sync()
        return output

    def stage_inputs(self, inputs, name: str, what: str):
        """GPU inputs reach the candidate through buffers it allocates and shares with the judge:
        the judge copies into them (the candidate can never map the judge's memory, which would
        take the privilege to trace it). Returns the inputs with every tensor replaced by a marker
        the worker resolves, and the judge's own view of the candidate's buffers."""
        staged = tensors(inputs)
        # What the judge's allocator keeps cached (the reference's temporaries, a variant's draws)
        # goes back to the device first: at benchmark sizes the candidate's buffers need that room.
        torch.cuda.empty_cache()
        specs = [[list(t.shape), str(t.dtype).removeprefix("torch.")] for t in staged]
        buffers = self.candidate.request(what, cmd="stage", name=name, specs=specs).get("buffers") or []
        if len(buffers) != len(staged) or any(
                not isinstance(b, torch.Tensor) or b.shape != t.shape or b.dtype != t.dtype
                for b, t in zip(buffers, staged)):
            raise Rejection("cheat", f"the candidate process returned bad input buffers while {what}")
        for buffer, tensor in zip(buffers, staged):
            buffer.copy_(tensor)
        torch.cuda.synchronize()
        counter = iter(range(len(staged)))
        return map_tensors(inputs, lambda t: {"__staged__": [name, next(counter)]}), buffers

    def call_candidate(self, inputs, mode: str, what: str, keep_as: str | None = None):
        """One candidate call; its outputs copied into the judge's memory at once."""
        if self.on_gpu:
            inputs, self.staged_view = self.stage_inputs(inputs, "call", what)
        reply = self.candidate.request(what, cmd="call", inputs=inputs, mode=mode, what=what, keep_as=keep_as)
        if reply.get("tampered"):
            raise Rejection("cheat", f"{what}: {reply['tampered']}")
        got = clone(reply.pop("outputs", None))
        self.sync()
        return got, reply

    def time_candidate(self):
        """The candidate's timing; harness.contention.time_watched calls it, again when the GPU was shared."""
        timing_check.time_candidate(self)

    def time_baselines(self):
        """Eager and torch.compile, timed once the candidate's process is gone (time_watched too)."""
        timing_check.time_baselines(self)


def _triton_version() -> str:
    import triton
    return triton.__version__


def verify_job(task_path: str, candidate_path: str, device: str, dsl: str = "triton_cuda", trials: int = 5,
               measure: bool = True, seed: int | None = None, memory_limit_mb: int | None = None,
               reference_timings: dict | None = None, timeout_s: float = 120.0) -> dict:
    started = time.monotonic()
    # Another user cannot share GPU memory with the judge (CUDA IPC refuses across users): on a GPU
    # the candidate stays root without capabilities, on the CPU it becomes `nobody` where it can.
    drop_privileges = isolation.SWITCH_USER and device == "cpu"
    isolation.become_subreaper()
    isolation.hide_from_same_user()
    judge = Judge(task_path, candidate_path, device, dsl, trials, measure, seed, memory_limit_mb)
    judge.reference_timings = reference_timings
    candidate = None
    phases = judge.report["phase_s"] = {}

    def phase(name, step, *args):
        began = time.monotonic()
        try:
            return step(*args)
        except torch.OutOfMemoryError as error:  # the judge's own room, not the candidate's fault
            raise Rejection("oom", f"the judge ran out of device memory during {name} (the task needs more than "
                                   f"this device holds beside the candidate's process): {error_text(error)[:300]}") from None
        finally:
            phases[name] = round(time.monotonic() - began, 4)
            if judge.on_gpu:  # what the judge freed goes back to the device, for the candidate's process
                torch.cuda.empty_cache()
    try:
        candidate = phase("sandbox", CandidateProcess, judge.on_gpu, memory_limit_mb, drop_privileges,
                          started + timeout_s, timeout_s, judge.read_candidate())
        phase("load", judge.load, candidate)
        phase("trials", check_trials, judge)
        phase("variants", check_variants, judge)
        phase("own_work", check_own_work, judge)
        phase("persistence", check_final_persistence, judge)
        if judge.on_gpu and judge.measure:  # each re-timed once if the GPU was shared
            phase("timing", contention.time_watched, judge, judge.time_candidate)
            judge.staged_view = None  # the candidate's buffers, mapped here: dropped before its process ends
            candidate.close()  # its process and its device work end here: none of it beside the baselines
            candidate = None
            phase("baselines", contention.time_watched, judge, judge.time_baselines,
                  functools.partial(contention.DeviceWatch, own_processes=1))
        judge.report["status"], judge.report["reason"] = "accepted", ""
    except Rejection as rejection:
        judge.report["status"], judge.report["reason"] = rejection.status, rejection.reason
        if judge.on_gpu and is_cuda_fault(rejection.reason):
            judge.report["flags"].append("cuda_fault")
    finally:
        if candidate is not None:
            candidate.close()
        kernel_cache.trim(judge.kernel_cache)
    judge.report.setdefault("memory", {}).update(memory.peak_usage(judge.on_gpu))
    judge.report.setdefault("device_name", "")
    from harness.summary import summarize
    judge.report["summary"] = summarize(judge.report)
    judge.report.pop("reason")
    return judge.report


def warm_up(device: str) -> None:
    """Run once in the fork server so every child starts with the lazily imported machinery loaded
    (dispatch modes pull in dynamo and sympy: about a second per job otherwise; GPU jobs also
    torch.compile the reference). CPU tensors only: the server must never initialise CUDA."""
    import torch._dynamo  # noqa: F401
    import torch.utils.flop_counter  # noqa: F401
    import harness.candidate_worker  # noqa: F401
    from harness.summary import summarize  # noqa: F401
    if device != "cpu":
        import torch._inductor.compile_fx  # noqa: F401
    triton_launches.install()
    with torch.device("meta"):
        torch.randn(4, 4)
    with TorchOps(triton_launches, poison="all"):
        x = torch.randn(4, 4)
        clone([x, {"k": x}])
        compare.compare_outputs(torch.relu(x), torch.empty_like(x))
    list(judge_inputs.second_shapes([x], grow=True))
    if device == "cpu":
        _warm_interpreter()


def _warm_interpreter() -> None:
    """The Triton interpreter's first launch in a process costs ~50 ms of one-off set-up; paid here
    once, every candidate process forked from the server starts past it."""
    import triton
    import triton.language as tl

    @triton.jit
    def increment_kernel(x_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(x_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + 1, mask=mask)

    increment_kernel[(1,)](torch.zeros(8), 8, BLOCK=8)
