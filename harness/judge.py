"""The jobs that run inside a sandboxed child: judge a candidate (verify_job) or check a task
(validate_job). Both return plain dicts; crashes and hangs are handled by the caller."""
from __future__ import annotations

import contextlib
import copy
import math
import platform

import torch

from harness import compare
from harness.anticheat import ALLOWED_EXTERN_OPS, TorchOps, triton_launches
from harness.task_loading import load_module, load_task

CUDA_FAULT_MARKERS = ("illegal memory access", "device-side assert", "misaligned address",
                      "unspecified launch failure", "illegal instruction", "CUDA error")
SPEEDUP_SUSPICIOUS = 10.0


class Rejection(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _clone(value):
    return _map_tensors(value, lambda t: t.detach().clone())


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')}{list(value.shape)}"
    return f"{type(value).__name__}({value!r})"[:60]


def _finite_or_none(value: float) -> float | None:
    """Verdicts are strict JSON: an error that is NaN or infinite is reported as unknown (None)."""
    return value if math.isfinite(value) else None


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 400 else text[:400] + "…"


def classify_exception(error: BaseException, what: str) -> Rejection:
    """Turn an exception raised by candidate code into a rejection with the right status."""
    text = _error_text(error)
    name = type(error).__name__
    module = type(error).__module__ or ""
    if isinstance(error, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower() \
            or "can't allocate memory" in text:
        return Rejection("oom", f"{what} ran out of memory: {text}")
    if "CompilationError" in name or module.startswith("triton.compiler") or isinstance(error, SyntaxError):
        return Rejection("compile_error", f"{what} failed to compile: {text}")
    if isinstance(error, SystemExit):
        return Rejection("runtime_error", f"{what} called sys.exit({error.code!r})")
    return Rejection("runtime_error", f"{what} raised {text}")


def _is_cuda_fault(reason: str) -> bool:
    return any(marker in reason for marker in CUDA_FAULT_MARKERS)


class Judge:
    """One verification, inside the child. Fills `report` (a Verdict dict) as it goes."""

    def __init__(self, task_path, candidate_path, device, dsl, trials, measure, seed, memory_limit_mb):
        self.task_path, self.candidate_path = task_path, candidate_path
        self.on_gpu = device != "cpu"
        self.device = torch.device("cuda" if self.on_gpu else "cpu")
        self.dsl, self.trials, self.measure, self.seed = dsl, max(trials, 1), measure, seed
        self.reference_timings: dict | None = None
        self.launches = triton_launches
        self.launches.install()
        self.launches.reset()
        if self.on_gpu and memory_limit_mb:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, memory_limit_mb * 2**20 / total))
        self.report = {
            "device": device, "trials": 0, "flags": [], "torch_ops_left": [], "allowed_leftovers": [],
            "device_name": torch.cuda.get_device_name(0) if self.on_gpu
            else f"{platform.processor() or platform.machine()} CPU (Triton interpreter)",
            "versions": {"torch": torch.__version__, "triton": _triton_version(), "python": platform.python_version()},
        }

    # -- helpers -------------------------------------------------------------------------------------
    def _sync(self):
        if self.on_gpu:
            torch.cuda.synchronize()

    def _inputs(self, seed: int):
        torch.manual_seed(seed)
        return _map_tensors(self.task.get_inputs(), lambda t: t.to(self.device))

    def _run_candidate(self, inputs, ops: TorchOps, what: str):
        try:
            with torch.no_grad(), ops:
                output = self.model_new(*inputs)
            self._sync()
            return output
        except (Exception, SystemExit) as error:
            raise classify_exception(error, what) from None

    # -- phases ----------------------------------------------------------------------------------------
    def load(self):
        try:
            self.task, self.report["shrunk"] = load_task(self.task_path, shrink=not self.on_gpu)
        except Exception as error:
            raise Rejection("invalid", f"the task does not load: {_error_text(error)}") from None
        try:
            candidate = load_module(self.candidate_path, "candidate")
        except (Exception, SystemExit) as error:
            raise Rejection("compile_error", f"the candidate file does not import: {_error_text(error)}") from None
        if not hasattr(candidate, "ModelNew"):
            raise Rejection("invalid", "the candidate file defines no ModelNew")
        try:
            init_inputs = self.task.get_init_inputs()
            torch.manual_seed(self.seed)
            self.reference = self.task.Model(*init_inputs).to(self.device).eval()
        except Exception as error:
            raise Rejection("invalid", f"the reference Model cannot be built: {_error_text(error)}") from None
        try:
            torch.manual_seed(self.seed)
            self.model_new = candidate.ModelNew(*init_inputs).to(self.device).eval()
        except (Exception, SystemExit) as error:
            raise classify_exception(error, "ModelNew(*get_init_inputs())") from None
        reference_state = self.reference.state_dict()
        new_state = self.model_new.state_dict()
        if reference_state and reference_state.keys() == new_state.keys() and \
                all(reference_state[k].shape == new_state[k].shape for k in reference_state):
            self.model_new.load_state_dict(reference_state)

    def check_trials(self):
        self.reference_ops = TorchOps(self.launches)
        self.candidate_ops = TorchOps(self.launches, poison_allocations=True)
        for trial in range(self.trials):
            seed = self.seed + 1 + trial
            inputs = self._inputs(seed)
            pristine = _clone(inputs)
            with torch.no_grad(), (self.reference_ops if trial == 0 else contextlib.nullcontext()):
                expected = self.reference(*_clone(inputs))
            self._sync()
            self.launches.counting = True
            got = self._run_candidate(inputs, self.candidate_ops, f"ModelNew.forward (trial {trial}, seed {seed})")
            self.launches.counting = False
            self.report["triton_launches"] = self.launches.count
            self._check_inputs_untouched(inputs, pristine, got, trial)
            result, index = compare.compare_outputs(got, expected)
            if not result.ok and self._as_exact_as_reference(got, expected, pristine):
                note = ("outside the fp32 tolerance of the reference, but no further from a float64 "
                        "evaluation than the fp32 reference itself (reference rounding)")
                if note not in self.report["flags"]:
                    self.report["flags"].append(note)
                result.ok = True
            if not result.ok:
                self.report["max_abs_err"] = _finite_or_none(result.max_abs_err)
                self.report["max_rel_err"] = _finite_or_none(result.max_rel_err)
                hints = []
                if result.unwritten:
                    hints.append("fresh torch.empty* allocations are NaN-filled by the harness, so these are "
                                 "output elements your kernel never wrote (masking/grid too small?)")
                if trial > 0:
                    hints.append("earlier trials matched: the result may be cached or depend on state from a "
                                 "previous call")
                raise Rejection("mismatch", f"output {index} differs from the reference in trial {trial} "
                                            f"(seed {seed}): {result.problem}"
                                + "".join(f". Note: {hint}" for hint in hints))
            for key, error in (("max_abs_err", result.max_abs_err), ("max_rel_err", result.max_rel_err)):
                self.report[key] = max(self.report.get(key) or 0.0, error)
            self.report["trials"] = trial + 1
            if trial == 0:
                self.first_inputs, self.first_output = pristine, _clone(got)

    def _as_exact_as_reference(self, got, expected, inputs) -> bool:
        """An fp32 reference rounds too: long sums and scans drift from the true result by more
        than the fp32 tolerance where values cancel. A candidate that is no further from a float64
        evaluation of the reference than twice the reference's own error (plus the usual
        tolerance) is as correct as the reference. Reduced-precision cheats stay far outside."""
        got_tensors = [t for t in compare.flatten(got) if isinstance(t, torch.Tensor)]
        expected_tensors = [t for t in compare.flatten(expected) if isinstance(t, torch.Tensor)]
        if not expected_tensors or len(got_tensors) != len(expected_tensors):
            return False
        if any(t.dtype != torch.float32 or g.shape != t.shape for g, t in zip(got_tensors, expected_tensors)):
            return False
        try:
            reference64 = copy.deepcopy(self.reference).double()
            inputs64 = _map_tensors(_clone(inputs), lambda t: t.double() if t.is_floating_point() else t)
            with torch.no_grad():
                truth = [t for t in compare.flatten(reference64(*inputs64)) if isinstance(t, torch.Tensor)]
        except Exception:  # the reference does not run in float64: no second opinion
            return False
        tolerance = compare.tolerance_for(torch.float32)
        for candidate, reference, exact in zip(got_tensors, expected_tensors, truth):
            reference_error = (reference.double() - exact).abs()
            candidate_error = (candidate.double() - exact).abs()
            bound = 2 * reference_error + tolerance.atol + tolerance.rtol * exact.abs()
            if not bool((candidate_error <= bound).all()):
                return False
            # The output-scale check too, so an all-zeros answer to a tiny output cannot slip by.
            if candidate_error.numel() and float(candidate_error.max()) > (
                    2 * float(reference_error.max()) + tolerance.scale * float(exact.abs().max())):
                return False
        return True

    def _check_inputs_untouched(self, inputs, pristine, output, trial):
        input_tensors = [t for t in compare.flatten(inputs) if isinstance(t, torch.Tensor)]
        for index, (now, before) in enumerate(zip(input_tensors, compare.flatten(pristine))):
            if not compare.tensors_equal(now, before):
                raise Rejection("mismatch", f"ModelNew modified input {index} in place (trial {trial}); "
                                            "inputs must be left unchanged: write results to a new tensor")
        input_storages = {t.untyped_storage().data_ptr() for t in input_tensors if t.numel()}
        for index, out in enumerate(compare.flatten(output)):
            if isinstance(out, torch.Tensor) and out.numel() and out.untyped_storage().data_ptr() in input_storages:
                raise Rejection("mismatch", f"output {index} shares memory with an input; return a new tensor")

    def check_own_work(self):
        """Anti-cheat: launches, ghost replay, torch ops left over. Raises with every reason found."""
        candidate_ops = self.candidate_ops.compute_ops
        reference_ops = self.reference_ops.compute_ops
        self.report["torch_ops_left"] = sorted(candidate_ops)
        self.report["allowed_leftovers"] = sorted(candidate_ops & ALLOWED_EXTERN_OPS)
        reasons = []
        uses_triton = self.dsl.startswith("triton")
        if uses_triton and self.launches.count == 0:
            reasons.append("no Triton kernel was launched: the work must be done by @triton.jit kernels")
        if uses_triton and self.launches.count and self._ghost_output_unchanged():
            reasons.append("the outputs stay the same when every Triton launch is skipped, so they are computed "
                           "by torch (or come from cached/stale memory), not by your kernels")
        if reference_ops and reference_ops <= candidate_ops:
            reasons.append("ModelNew still runs every compute op of the reference in PyTorch "
                           f"({', '.join(sorted(reference_ops))}); replace them with Triton kernels")
        if reasons:
            raise Rejection("cheat", "; ".join(reasons))

    def _ghost_output_unchanged(self) -> bool:
        self.launches.skip = True
        try:
            with torch.no_grad(), TorchOps(self.launches, poison_allocations=True):
                ghost = self.model_new(*_clone(self.first_inputs))
            self._sync()
        except Exception:
            return False  # it depends on its kernels enough to fail without them
        finally:
            self.launches.skip = False
        return compare.same_outputs(ghost, self.first_output)

    def time_all(self):
        from harness.roofline import roofline
        from harness.timing import HEAD_START_MS, L2Flusher, sync_overhead_ms, time_callable
        from torch.utils.flop_counter import FlopCounterMode

        inputs = self._inputs(self.seed)
        flush = L2Flusher()
        overhead = sync_overhead_ms(flush)
        timings = {}
        with torch.no_grad():
            timings["candidate"] = time_callable(self.model_new, inputs, flush=flush, overhead_ms=overhead)
            # A search run times its reference once and passes those figures to every later job.
            cached = self.reference_timings or {}
            timings["eager"] = cached.get("eager") or time_callable(self.reference, inputs, flush=flush,
                                                                     overhead_ms=overhead)
            if cached.get("compile"):
                timings["compile"] = cached["compile"]
            else:
                try:
                    compiled = torch.compile(self.reference)
                    compiled(*inputs)
                    timings["compile"] = time_callable(compiled, inputs, flush=flush, overhead_ms=overhead)
                except Exception as error:
                    self.report["flags"].append(f"torch.compile baseline failed: {_error_text(error)[:200]}")
            flop_counter = FlopCounterMode(display=False)
            with flop_counter:
                output = self.reference(*inputs)
        self.report["timings"] = timings
        candidate_ms = timings["candidate"]["median_ms"]
        for baseline in ("eager", "compile"):
            if baseline in timings and candidate_ms > 0:
                self.report[f"speedup_vs_{baseline}"] = timings[baseline]["median_ms"] / candidate_ms
        tensors = [t for t in compare.flatten(inputs) + compare.flatten(output) if isinstance(t, torch.Tensor)]
        traffic = sum(t.numel() * t.element_size() for t in tensors)
        figures = roofline(traffic_bytes=traffic, flops=flop_counter.get_total_flops(), median_ms=candidate_ms,
                           device_name=self.report["device_name"], dtype=tensors[-1].dtype)
        self.report["roofline"] = figures
        if candidate_ms < figures["memory_bound_ms"]:
            self.report["flags"].append(
                f"suspicious: {candidate_ms:.4f} ms is below the {figures['memory_bound_ms']:.4f} ms that moving "
                f"{traffic} bytes takes at peak bandwidth")
        launch_ms = (timings["candidate"].get("launch_us") or 0) / 1000
        if launch_ms > HEAD_START_MS:
            self.report["flags"].append(
                f"host-bound: issuing one call takes {launch_ms:.2f} ms of host time, more than the "
                f"{HEAD_START_MS:g} ms head start the timing gives it, so its time includes host time")
        for baseline in ("eager", "compile"):
            speedup = self.report.get(f"speedup_vs_{baseline}") or 0
            if speedup > SPEEDUP_SUSPICIOUS:
                self.report["flags"].append(f"suspicious: {speedup:.1f}x faster than {baseline}")


def warm_up(device: str) -> None:
    """Run once in the fork server so every child starts with the lazily imported machinery loaded
    (dispatch modes pull in dynamo and sympy: about a second per job otherwise; GPU jobs also
    torch.compile the reference). CPU tensors only: the server must never initialise CUDA."""
    import torch._dynamo  # noqa: F401
    import torch.utils.flop_counter  # noqa: F401
    if device != "cpu":
        import torch._inductor.compile_fx  # noqa: F401
    triton_launches.install()
    with torch.device("meta"):
        torch.randn(4, 4)
    with TorchOps(triton_launches, poison_allocations=True):
        x = torch.randn(4, 4)
        _clone([x, {"k": x}])
        compare.compare_outputs(torch.relu(x), torch.empty_like(x))


def _triton_version() -> str:
    import triton
    return triton.__version__


def summarize(report: dict) -> str:
    """The one paragraph a fixer reads."""
    status = report["status"]
    if status == "accepted":
        head = (f"ACCEPTED: matches the reference in {report['trials']} trials with fresh inputs "
                f"(max abs err {report.get('max_abs_err') or 0:.3g}, max err/scale {report.get('max_rel_err') or 0:.3g}).")
    else:
        head = f"REJECTED ({status}): {report['reason']}."
    parts = [head, f"Triton launches: {report.get('triton_launches', 0)}."]
    left = report.get("torch_ops_left") or []
    if left:
        allowed = set(report.get("allowed_leftovers") or [])
        parts.append("Still in PyTorch: " + ", ".join(f"{op} (allowed extern)" if op in allowed else op
                                                      for op in left) + ".")
    timings = report.get("timings")
    if timings:
        candidate = timings["candidate"]["median_ms"]
        speed = f"Speed: {candidate:.4f} ms (IQR {timings['candidate']['iqr_ms']:.4f})"
        if "eager" in timings:
            speed += f", eager {timings['eager']['median_ms']:.4f} ms ({report.get('speedup_vs_eager') or 0:.2f}x)"
        if "compile" in timings:
            speed += f", torch.compile {timings['compile']['median_ms']:.4f} ms " \
                     f"({report.get('speedup_vs_compile') or 0:.2f}x)"
        roof = report.get("roofline") or {}
        if roof:
            speed += f"; {roof['achieved_gbps']:.0f} GB/s = {100 * roof['bandwidth_fraction']:.0f}% of peak bandwidth"
            if roof.get("compute_fraction") is not None:
                speed += f", {roof['achieved_tflops']:.1f} TFLOP/s = {100 * roof['compute_fraction']:.0f}% of peak"
        parts.append(speed + ".")
    elif status == "accepted":
        parts.append("Speed: not measured" + (" (CPU, Triton interpreter)." if report.get("device") == "cpu" else "."))
    if report.get("shrunk"):
        parts.append("Sizes shrunk for the CPU interpreter: "
                     + ", ".join(f"{k} {a}->{b}" for k, (a, b) in report["shrunk"].items()) + ".")
    if report.get("flags"):
        parts.append("Flags: " + "; ".join(report["flags"]) + ".")
    return " ".join(parts)


def verify_job(task_path: str, candidate_path: str, device: str, dsl: str = "triton_cuda", trials: int = 5,
               measure: bool = True, seed: int = 0, memory_limit_mb: int | None = None,
               reference_timings: dict | None = None) -> dict:
    judge = Judge(task_path, candidate_path, device, dsl, trials, measure, seed, memory_limit_mb)
    judge.reference_timings = reference_timings
    try:
        judge.load()
        judge.check_trials()
        judge.check_own_work()
        if judge.on_gpu and judge.measure:
            try:
                judge.time_all()
            except (Exception, SystemExit) as error:
                raise classify_exception(error, "the timing run") from None
        judge.report["status"], judge.report["reason"] = "accepted", ""
    except Rejection as rejection:
        judge.report["status"], judge.report["reason"] = rejection.status, rejection.reason
        if judge.on_gpu and _is_cuda_fault(rejection.reason):
            judge.report["flags"].append("cuda_fault")
    judge.report["summary"] = summarize(judge.report)
    judge.report.pop("reason")
    return judge.report


def validate_job(task_path: str, device: str) -> dict:
    """Check that a task file is usable as a reference; returns a TaskCheck dict."""
    check = {"ok": False, "problems": [], "inputs": [], "outputs": [], "init_inputs": [], "shrunk": None}
    problems = check["problems"]
    target = torch.device("cpu" if device == "cpu" else "cuda")
    try:
        task, check["shrunk"] = load_task(task_path, shrink=device == "cpu")
        init_inputs = task.get_init_inputs()
        check["init_inputs"] = [_describe(x) for x in init_inputs]
        torch.manual_seed(0)
        model = task.Model(*init_inputs).to(target).eval()

        def inputs(seed):
            torch.manual_seed(seed)
            return _map_tensors(task.get_inputs(), lambda t: t.to(target))

        first, second = inputs(1), inputs(2)
        check["inputs"] = [_describe(x) for x in first]
        with torch.no_grad():
            output = model(*_clone(first))
            again = model(*_clone(first))
        outputs = compare.flatten(output)
        check["outputs"] = [_describe(x) for x in outputs]
    except Exception as error:
        problems.append(f"the task does not run: {_error_text(error)}")
        return check
    input_tensors = [t for t in first if isinstance(t, torch.Tensor)]
    if not input_tensors:
        problems.append("get_inputs() returns no tensors")
    elif all(compare.tensors_equal(a, b) for a, b in zip(input_tensors, second)):
        problems.append("get_inputs() gives the same tensors for every seed, so cached results cannot be caught")
    if not any(isinstance(x, torch.Tensor) for x in outputs):
        problems.append("forward() returns no tensors")
    if not compare.compare_outputs(again, output)[0].ok:
        problems.append("forward() is not deterministic: two calls on the same inputs differ")
    for index, out in enumerate(outputs):
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            if not bool(torch.isfinite(out).all()):
                problems.append(f"output {index} contains NaN or Inf")
            elif out.numel() and not bool(out.any()):
                problems.append(f"output {index} is all zeros, so an empty kernel would pass")
    check["ok"] = not problems
    return check
