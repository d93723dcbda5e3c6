"""The judge: the job that runs in a sandboxed child of the fork server and writes the verdict.

The judge never imports candidate code. Its first act is to fork the candidate process (before
CUDA is touched, so both can use the GPU); from then on it talks to it only through a channel
(harness.channel), sending inputs and taking back outputs, which it copies at once and compares
with its own reference. Checks that must run inside the candidate's process (the op census, the
ghost replays) come back as claims the judge evaluates itself; everything else (correctness on
fresh seeds and on shifted/scaled/special inputs, a second shape, persistence of earlier outputs,
aliasing, the outputs of the timed calls) is checked from outside.
"""
from __future__ import annotations

import os
import platform
import secrets
import time

import torch

from harness import compare, contention, degenerate, inputs as judge_inputs, isolation, kernel_cache, memory
from harness.anticheat import NON_COMPUTE_OPS, TorchOps, allowed_vendor_ops, triton_launches
from harness.candidate_process import CandidateProcess
from harness.candidate_worker import output_checksum
from harness.errors import Rejection, error_text, is_cuda_fault
from harness.inputs import map_tensors
from harness.task_loading import load_task

SPEEDUP_SUSPICIOUS = 10.0
ROOFLINE_IMPOSSIBLE = 0.8       # claimed time below 80 % of the bandwidth floor cannot be real
PERSISTENCE_WAIT_S = 0.05       # earlier outputs must stay intact at least this long after their call
ILL_CONDITIONED_SLACK = 10.0    # where the reference itself is off, how much further a candidate may be
TIMED_CALLS = 100
CHECKSUM_RTOL = 1e-5   # of the sum of magnitudes: room for atomics' reordering, none for another answer
COPY_OPS = {"clone", "_to_copy", "copy_", "contiguous", "to", "cat", "stack"}
FINGERPRINT_SAMPLE = 1 << 22


def _clone(value):
    return map_tensors(value, lambda t: t.detach().clone())


def _tensors(value) -> list[torch.Tensor]:
    return [t for t in compare.flatten(value) if isinstance(t, torch.Tensor)]


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')}{list(value.shape)}"
    return f"{type(value).__name__}({value!r})"[:60]


def _chunks(*tensors: torch.Tensor):
    """The same flat slices of equally shaped tensors, COMPARE_CHUNK elements at a time."""
    flat = [t.detach().reshape(-1) for t in tensors]
    for begin in range(0, flat[0].numel(), compare.COMPARE_CHUNK):
        yield tuple(f[begin:begin + compare.COMPARE_CHUNK] for f in flat)


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def _fingerprint(value) -> list[torch.Tensor]:
    """What the judge keeps of its inputs to notice in-place writes without a full copy: a strided
    sample of at most FINGERPRINT_SAMPLE elements per tensor (a kernel that writes into its inputs
    writes far more than one element in FINGERPRINT_SAMPLE)."""
    samples = []
    for t in _tensors(value):
        flat = t.detach().reshape(-1)
        samples.append(flat[::max(1, flat.numel() // FINGERPRINT_SAMPLE)].clone())
    return samples


def _unchanged(before: list[torch.Tensor], after) -> list[int]:
    """Indices of the inputs whose sample differs (NaN equal to NaN)."""
    now = _fingerprint(after)
    return [i for i, (a, b) in enumerate(zip(before, now)) if not compare.tensors_equal(a, b.to(a.device))]


class Judge:
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
        self._truth = None  # (inputs, their float64 evaluation): the last one asked for
        self.report = {"device": device, "trials": 0, "flags": [], "torch_ops_left": [], "allowed_leftovers": [],
                       "seed": self.seed, "triton_launches": 0,
                       "versions": {"torch": torch.__version__, "triton": _triton_version(),
                                    "python": platform.python_version()}}

    def _sync(self):
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
        self._send_model("loading the candidate")

    def _send_model(self, what: str):
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

    def _reference(self, inputs, record_ops: bool = False):
        ops = TorchOps(triton_launches, count_inside_launches=True) if record_ops else None
        with torch.no_grad():
            if ops is not None:
                with ops:
                    output = self.reference(*inputs)
                self.reference_ops |= ops.ops
            else:
                output = self.reference(*inputs)
        self._sync()
        return output

    def _stage(self, inputs, name: str, what: str):
        """GPU inputs reach the candidate through buffers it allocates and shares with the judge:
        the judge copies into them (the candidate can never map the judge's memory, which would
        take the privilege to trace it). Returns the inputs with every tensor replaced by a marker
        the worker resolves, and the judge's own view of the candidate's buffers."""
        tensors = _tensors(inputs)
        specs = [[list(t.shape), str(t.dtype).removeprefix("torch.")] for t in tensors]
        buffers = self.candidate.request(what, cmd="stage", name=name, specs=specs).get("buffers") or []
        if len(buffers) != len(tensors) or any(
                not isinstance(b, torch.Tensor) or b.shape != t.shape or b.dtype != t.dtype
                for b, t in zip(buffers, tensors)):
            raise Rejection("cheat", f"the candidate process returned bad input buffers while {what}")
        for buffer, tensor in zip(buffers, tensors):
            buffer.copy_(tensor)
        torch.cuda.synchronize()
        counter = iter(range(len(tensors)))
        return map_tensors(inputs, lambda t: {"__staged__": [name, next(counter)]}), buffers

    def _call(self, inputs, mode: str, what: str, keep_as: str | None = None):
        """One candidate call; its outputs copied into the judge's memory at once."""
        if self.on_gpu:
            inputs, self.staged_view = self._stage(inputs, "call", what)
        reply = self.candidate.request(what, cmd="call", inputs=inputs, mode=mode, what=what, keep_as=keep_as)
        if reply.get("tampered"):
            raise Rejection("cheat", f"{what}: {reply['tampered']}")
        got = _clone(reply.pop("outputs", None))
        self._sync()
        return got, reply

    # -- correctness ---------------------------------------------------------------------------------
    def _check(self, got, expected, inputs, what: str, hint: str = "", special: bool = False,
               variant: str | None = None):
        attention = any("attention" in op for op in self.reference_ops)
        result, index = compare.compare_outputs(got, expected, special, masked_nan=special and attention)
        if result.extra_nonfinite:
            self.report["flags"].append(f"{result.extra_nonfinite} output elements are finite where torch's are not, "
                                        "or the reverse, on the special-values inputs")
        if not result.ok and self._as_exact_as_reference(got, expected, inputs):
            note = ("outside the tolerance of the reference, but no further from a float64 "
                    "evaluation than the reference itself (reference rounding)")
            if note not in self.report["flags"]:
                self.report["flags"].append(note)
            result.ok = True
        if not result.ok and variant in ("scaled", "shifted") and not self._reference_resolves(expected, inputs) \
                and self._as_exact_as_reference(got, expected, inputs, slack=ILL_CONDITIONED_SLACK):
            # The reference itself is off here; a candidate within an order of magnitude of its error
            # is not judged on these inputs, one further off (a one-pass variance at +1000) still is.
            self.report["flags"].append(f"not judged on the {variant} inputs: there the reference itself is further "
                                        "from a float64 evaluation than its dtype's tolerance (ill-conditioned)")
            return
        if not result.ok:
            self.report["max_abs_err"] = _finite_or_none(result.max_abs_err)
            self.report["max_rel_err"] = _finite_or_none(result.max_rel_err)
            hints = [hint] if hint else []
            if result.unwritten:
                hints.append("fresh torch.empty* allocations are NaN-filled by the harness, so these are "
                             "output elements your kernel never wrote (masking/grid too small?)")
            raise Rejection("mismatch", f"output {index} differs from the reference in {what}: {result.problem}"
                            + "".join(f". Note: {h}" for h in hints))
        if what.startswith("trial"):  # the figures describe the task's own input distribution
            for key, error in (("max_abs_err", result.max_abs_err), ("max_rel_err", result.max_rel_err)):
                self.report[key] = max(self.report.get(key) or 0.0, error)

    staged_view = None

    def _trial(self, inputs, what: str, hint: str = "", mode: str = "plain", expected=None, special=False,
               keep_as: str | None = None, variant: str | None = None):
        fingerprint = _fingerprint(inputs)
        if expected is None:
            expected = self._reference(inputs, record_ops=not self.reference_ops)
        got, reply = self._call(inputs, mode, what, keep_as)
        launches = int(reply.get("launches") or 0)
        self.report["triton_launches"] += launches
        self.candidate_ops |= set(reply.get("ops") or [])
        # CPU: the candidate's copy comes back; GPU: the judge reads the candidate's buffers itself.
        after = reply.pop("inputs_after", None) if not self.on_gpu else self.staged_view
        changed = _unchanged(fingerprint, after if after is not None else inputs)
        if changed:
            raise Rejection("mismatch", f"ModelNew modified input {changed[0]} in place ({what}); inputs must be "
                                        "left unchanged: write results to a new tensor")
        self._check_aliases(reply.get("aliases") or [], inputs, expected, what)
        try:
            self._check(got, expected, inputs, what, hint, special, variant)
        finally:
            self._truth = None  # a float64 copy of the outputs: gigabytes at benchmark sizes
        if not launches and self.dsl.startswith("triton") and self.report["triton_launches"]:
            raise Rejection("cheat", f"{what} launched no Triton kernel though earlier calls did: the work "
                                     "must be done by your kernels on every call, observed or not")
        return got, expected

    def _check_aliases(self, aliases, inputs, expected, what):
        from harness.candidate_worker import _aliases
        allowed = {tuple(a) for a in _aliases(inputs, expected)}
        for alias in aliases:
            if tuple(alias) not in allowed:
                index, kind, other = alias
                raise Rejection("mismatch", f"output {index} shares memory with {kind} {other} ({what}); "
                                            "return new tensors, as the reference does")

    def check_trials(self):
        previous = None
        # The op recorder watches trial 0 and one other trial the candidate cannot predict; the
        # others (and every later call) run unobserved, as the user's calls will, and must still
        # launch Triton kernels and match.
        observed = {0, secrets.randbelow(self.trials - 1) + 1 if self.trials > 2 else 0}
        for trial in range(self.trials):
            seed = self.seed + 1 + trial
            inputs = judge_inputs.task_inputs(self.task, seed, self.device)
            hint = "earlier trials matched: the result may be cached or depend on state from a previous call" \
                if trial else ""
            expected = self._informative_reference(inputs) if trial == 0 else None
            got, expected = self._trial(inputs, f"trial {trial} (seed {seed})", hint, expected=expected,
                                 mode="census" if trial in observed else "plain",
                                 keep_as="last_trial" if trial == self.trials - 1 else None)
            if previous is not None:
                self._check_kept(-2, previous, f"trial {trial}")
            previous = got
            self.report["trials"] = trial + 1
            if trial == 0:
                from harness.candidate_worker import _aliases
                self.first_seed = seed  # the ghost replays draw these inputs again rather than keep them
                self.output_count = len(_tensors(expected))
                self.reference_aliases = {a[0] for a in _aliases(inputs, expected)}  # outputs that are views
            del inputs, expected, got  # (got lives on as previous) no stale copy into the next trial
        self.last_trial_output = previous
        self.last_trial_seen = time.monotonic()

    def _informative_reference(self, inputs):
        """The reference's output on trial 0's inputs; where it is all zeros at the task's own
        initialisation, the reference's parameters are re-drawn (and sent to the candidate) so that
        a kernel that only writes zeros cannot pass (harness.degenerate)."""
        expected = self._reference(inputs, record_ops=True)
        if not degenerate.all_zero(expected):
            return expected
        informative, note = degenerate.informative_output(self.reference, inputs, self.seed + 7)
        self.report["flags"].append(note)
        if informative is None:
            return expected
        self._sync()
        self._send_model("loading the candidate with the re-drawn parameters")
        return informative

    def check_final_persistence(self):
        """The last trial's outputs, re-read after everything else ran (and at least a moment later)."""
        time.sleep(max(0.0, PERSISTENCE_WAIT_S - (time.monotonic() - self.last_trial_seen)))
        self._check_kept("last_trial", self.last_trial_output,
                         f"at least {PERSISTENCE_WAIT_S:g} s and several calls after the last trial")
        self.last_trial_output = None  # memory: timing needs the room, in both processes
        self.candidate.request("releasing earlier outputs", cmd="forget")

    def _check_kept(self, which, copy, when: str):
        reply = self.candidate.request("re-reading earlier outputs", cmd="kept", index=which)
        now = reply.get("outputs")
        same = now is not None and len(_tensors(now)) == len(_tensors(copy)) and all(
            a.shape == b.shape and a.dtype == b.dtype and compare.tensors_equal(a.to(b.device), b)
            for a, b in zip(_tensors(now), _tensors(copy)))
        if not same:
            raise Rejection("mismatch", f"an earlier call's output changed afterwards ({when}): outputs must stay "
                                        "intact after later calls (a reused buffer, or work still writing it?)")

    def check_variants(self):
        """The task's inputs scaled, shifted, and sign-flipped with special values; then another shape."""
        base = judge_inputs.task_inputs(self.task, self.seed + 101, self.device)
        base_output = self._reference(base)
        base_shapes = [t.shape for t in _tensors(base_output)]
        base_nonfinite = judge_inputs.nonfinite_count(base_output)
        floating = judge_inputs.has_floating_input(base)
        del base_output, base  # memory: each variant draws its base again rather than keep it alive
        if floating:
            for index, name in enumerate(judge_inputs.VARIANTS):
                inputs = judge_inputs.variant(judge_inputs.task_inputs(self.task, self.seed + 101, self.device),
                                              name, self.seed + 200 + index)
                try:
                    expected = self._reference(inputs)
                except Exception:
                    continue  # the reference does not take these: nothing to hold the candidate to
                if name != "special" and judge_inputs.nonfinite_count(expected) > base_nonfinite:
                    continue
                self._trial(inputs, f"the {name} inputs trial", _VARIANT_HINTS[name], expected=expected,
                            special=name == "special", variant=name)
                del inputs, expected
                self.report.setdefault("input_variants", []).append(name)
        self._check_second_shape(judge_inputs.task_inputs(self.task, self.seed + 101, self.device), base_shapes)

    def _check_second_shape(self, base, base_shapes):
        shapes = judge_inputs.second_shapes(base, grow=not self.on_gpu)
        while True:
            try:
                description, inputs = next(shapes)
            except StopIteration:
                return
            except torch.OutOfMemoryError:  # the next shape's inputs do not fit beside the task's
                torch.cuda.empty_cache()
                self.report["flags"].append("no second shape tried: no device memory left for its inputs")
                return
            try:
                expected = self._reference(inputs)
            except Exception:
                continue
            if [t.shape for t in _tensors(expected)] == base_shapes:
                continue
            try:
                self._trial(inputs, f"a second shape ({description})",
                            "a ModelNew must serve every shape its reference accepts, or raise a clear error",
                            expected=expected)
            except Rejection as rejection:
                if rejection.status != "runtime_error":
                    raise
                self.report["flags"].append(f"does not serve {description}: {rejection.reason[:200]}")
            self.report["second_shape"] = description
            return

    def _float64_truth(self, inputs):
        """The reference evaluated in float64 (a copy of it, on float64 inputs); None when it
        does not run in float64. On a GPU without room for it (twice the inputs, plus outputs, at
        benchmark sizes), it is evaluated on the host instead. The last one is kept: one check asks
        up to three times about the same inputs."""
        if self._truth is not None and self._truth[0] is inputs:
            return self._truth[1]
        self._truth = None
        truth = self._evaluate_in_float64(inputs)
        self._truth = (inputs, truth)
        return truth

    def _evaluate_in_float64(self, inputs):
        import copy
        for device in ([self.device, torch.device("cpu")] if self.on_gpu else [self.device]):
            try:
                reference64 = copy.deepcopy(self.reference).to(device).double()
                inputs64 = map_tensors(inputs, lambda t: t.to(device).double() if t.is_floating_point() else t.to(device))
                with torch.no_grad():
                    return reference64(*inputs64)
            except torch.OutOfMemoryError:
                reference64 = inputs64 = None
                torch.cuda.empty_cache()
            except Exception:
                return None
        return None

    def _reference_resolves(self, expected, inputs) -> bool:
        """Whether the reference, in its own dtype, matches a float64 evaluation of itself on these
        inputs within its tolerance (if not, these inputs cannot tell a kernel's rounding from a bug)."""
        truth = self._float64_truth(inputs)
        if truth is None:
            return True  # no second opinion: hold the candidate to the reference
        cast = [t.to(device=e.device, dtype=e.dtype) if isinstance(t, torch.Tensor) and isinstance(e, torch.Tensor) else t
                for t, e in zip(compare.flatten(truth), compare.flatten(expected))]
        return compare.compare_outputs(expected, cast)[0].ok

    def _as_exact_as_reference(self, got, expected, inputs, slack: float = 2.0) -> bool:
        """A reference rounds too: long sums, scans and low-precision chains drift from the true
        result by more than the tolerance where values cancel. A candidate that is no further from
        a float64 evaluation of the reference than `slack` times the reference's own worst error
        (plus the usual tolerance) is as correct as the reference. Reduced-precision cheats and
        fragile algorithms (one-pass variances, unshifted exponentials) stay far outside."""
        got_tensors, expected_tensors = _tensors(got), _tensors(expected)
        if not expected_tensors or len(got_tensors) != len(expected_tensors):
            return False
        if any(not t.is_floating_point() or g.shape != t.shape or g.dtype != t.dtype
               for g, t in zip(got_tensors, expected_tensors)):
            return False
        truth = self._float64_truth(inputs)
        if truth is None:
            return False
        truth = _tensors(truth)
        for candidate, reference, exact in zip(got_tensors, expected_tensors, truth):
            tolerance = compare.tolerance_for(reference.dtype)
            # chunk by chunk, on the device of the float64 evaluation: no full-size float64 copy
            def chunks():
                for c, r, e in _chunks(candidate, reference, exact):
                    yield c.to(e.device).double(), r.to(e.device).double(), e
            reference_error = 0.0
            for cand, ref, exact_chunk in chunks():
                finite = torch.isfinite(exact_chunk) & torch.isfinite(ref)
                if finite.any():
                    reference_error = max(reference_error, float((ref - exact_chunk).abs()[finite].max()))
            worst, largest = 0.0, 0.0
            for cand, ref, exact_chunk in chunks():
                exact_finite = torch.isfinite(exact_chunk)
                says_what_reference_says = (torch.isnan(cand) & torch.isnan(ref)) | (cand == ref)
                # Where the true value is not finite the candidate's is not either (a NaN turned
                # into 0 is wrong; +inf where torch's formula gives NaN, as GELU's at +inf, is not);
                # where it is finite, the candidate is finite, or it overflowed as the reference did.
                if bool(torch.isfinite(cand)[~exact_finite].any()):
                    return False
                measured = exact_finite & torch.isfinite(cand)
                if not bool((measured | says_what_reference_says)[exact_finite].all()):
                    return False
                candidate_error = (cand - exact_chunk).abs().masked_fill(~measured, 0)
                magnitude = exact_chunk.abs().masked_fill(~measured, 0)
                if not bool((candidate_error <= slack * reference_error + tolerance.atol
                             + tolerance.rtol * magnitude).all()):
                    return False
                if candidate_error.numel():
                    worst, largest = max(worst, float(candidate_error.max())), max(largest, float(magnitude.max()))
            if worst > slack * reference_error + tolerance.scale * largest:
                return False
        return True

    # -- own work ------------------------------------------------------------------------------------
    def check_own_work(self):
        """Census of the ATen ops left in torch, and the two ghost replays. Raises with every reason."""
        reasons = []
        uses_triton = self.dsl.startswith("triton")
        reference_compute = {op for op in self.reference_ops if op not in NON_COMPUTE_OPS}
        allowed = allowed_vendor_ops(reference_compute)
        compute = {op for op in self.candidate_ops if op not in NON_COMPUTE_OPS}
        if not reference_compute:  # a data-movement task: the copies are the work
            compute |= self.candidate_ops & self.reference_ops & COPY_OPS
        left = sorted(compute - allowed)
        self.report["torch_ops_left"] = sorted(compute)
        self.report["allowed_leftovers"] = sorted(compute & allowed)
        if uses_triton and self.report["triton_launches"] == 0:
            reasons.append("no Triton kernel was launched: the work must be done by @triton.jit kernels")
        if left:
            reasons.append(f"ModelNew still computes in PyTorch ({', '.join(left)}); only views, allocations, "
                           "copies and the vendor matmul/convolution of the reference (with Triton work fused "
                           "around them) may stay in torch")
        if uses_triton and self.report["triton_launches"]:
            unlaunched = self._ghost_unlaunched()
            if unlaunched:
                reasons.append(unlaunched)
        if reasons:
            raise Rejection("cheat", "; ".join(reasons))

    def _ghost_unlaunched(self) -> str | None:
        """Replay with every launch skipped and every allocation poisoned, twice with different
        poisons: an output element that comes out the same both times was not produced by a launch."""
        try:
            first_inputs = judge_inputs.task_inputs(self.task, self.first_seed, self.device)
            ghost_a, _ = self._call(first_inputs, "ghost_a", "the ghost replay")
            ghost_b, _ = self._call(first_inputs, "ghost_b", "the ghost replay")
            del first_inputs
        except Rejection as rejection:
            if rejection.status in ("timeout", "crash", "oom"):
                raise
            return None  # it depends on its kernels enough to fail without them
        leaves_a, leaves_b = _tensors(ghost_a), _tensors(ghost_b)
        if len(leaves_a) != self.output_count or len(leaves_b) != self.output_count:
            return None
        aliased = self.reference_aliases
        for index, (a, b) in enumerate(zip(leaves_a, leaves_b)):
            if index in aliased or a.shape != b.shape or not a.numel():
                continue
            same = (a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point() else (a == b)
            count = int(same.sum())
            if count:
                return (f"{count} of {a.numel()} elements of output {index} come out the same when every Triton "
                        "launch is skipped, so they are computed by torch (or come from cached memory), not by "
                        "your kernels")
        return None

    # -- timing ----------------------------------------------------------------------------------------
    def time_all(self):
        from harness.roofline import roofline
        from harness.timing import HEAD_START_MS, L2Flusher, sync_overhead_ms, time_callable
        from torch.utils.flop_counter import FlopCounterMode

        # Fresh values (never the trials', whose outputs the candidate has seen), then two input sets
        # alternating in place during the timed calls: a candidate that caches by address returns
        # the old answer and is caught.
        inputs = judge_inputs.task_inputs(self.task, self.seed + 301, self.device)
        alternate = judge_inputs.task_inputs(self.task, self.seed + 302, self.device)
        checked_alternate = self._trial(alternate, "the alternate inputs of timing")[0]
        checked, expected = self._trial(inputs, "the call before timing (no op recorder active)")
        # What the candidate's own (checked) outputs sum to, per input set: a deterministic kernel
        # gives the same sums on every timed call.
        expected_sums = [output_checksum(checked), output_checksum(checked_alternate)]
        del checked, checked_alternate
        alternate_markers, _ = self._stage(alternate, "alternate", "timing the candidate")
        claimed = self.candidate.request("timing the candidate", cmd="time", calls=TIMED_CALLS,
                                         alternate=alternate_markers)
        last = _clone(claimed.get("outputs"))
        self._check(last, expected, inputs, "the call after timing",
                    "the outputs of timed calls are checked too: behave the same whether or not you are observed")
        self._check_timed_checksums(claimed.get("checksums") or [], expected_sums)
        if self.dsl.startswith("triton") and int(claimed.get("launches") or 0) < TIMED_CALLS:
            raise Rejection("cheat", f"the {TIMED_CALLS} timed calls launched {claimed.get('launches')} Triton kernels: "
                                     "timed calls must do the work, not return earlier results")
        del alternate
        timings = {"candidate": _claimed_timing(claimed.get("timing"))}
        del last, expected
        flush = L2Flusher()
        overhead = sync_overhead_ms(flush)
        with torch.no_grad():
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
                    self.report["flags"].append(f"torch.compile baseline failed: {error_text(error)[:200]}")
            flop_counter = FlopCounterMode(display=False)
            with flop_counter:
                output = self.reference(*inputs)
        self.report["timings"] = timings
        candidate_ms = timings["candidate"]["median_ms"]
        for baseline in ("eager", "compile"):
            if baseline in timings and candidate_ms > 0:
                self.report[f"speedup_vs_{baseline}"] = timings[baseline]["median_ms"] / candidate_ms
        tensors = _tensors(inputs) + _tensors(output)
        traffic = sum(t.numel() * t.element_size() for t in tensors)
        figures = roofline(traffic_bytes=traffic, flops=flop_counter.get_total_flops(), median_ms=candidate_ms,
                           device_name=self.report["device_name"], dtype=tensors[-1].dtype)
        self.report["roofline"] = figures
        if candidate_ms < ROOFLINE_IMPOSSIBLE * figures["memory_bound_ms"]:
            raise Rejection("cheat", f"the claimed time {candidate_ms:.4f} ms is impossible: moving the "
                                     f"{traffic} bytes of inputs and outputs takes at least "
                                     f"{figures['memory_bound_ms']:.4f} ms at peak bandwidth")
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

    def _check_timed_checksums(self, checksums, expected_sums):
        """Every timed call's outputs against the reference's for the inputs it was given."""
        if len(checksums) != TIMED_CALLS:
            raise Rejection("cheat", f"the timing run reported outputs for {len(checksums)} of {TIMED_CALLS} calls")
        for call, sums in enumerate(checksums):
            reference = expected_sums[call % 2]
            # per tensor [sum, sum |x|, sum x^2]: the first two are measured against sum |x|
            scales = [abs(reference[i if i % 3 == 2 else i - i % 3 + 1]) + 1.0 for i in range(len(reference))]
            if len(sums) != len(reference) or any(
                    abs(a - b) > CHECKSUM_RTOL * scale for a, b, scale in zip(sums, reference, scales)):
                raise Rejection("mismatch", f"timed call {call} returned outputs that do not match its inputs "
                                            "(a result cached or computed differently while timed?)")


_VARIANT_HINTS = {
    "scaled": "inputs x30: subtract the row max before exp, avoid overflow in intermediate values",
    "shifted": "inputs +1000: a one-pass E[x^2]-E[x]^2 variance cancels catastrophically; use two passes or Welford",
    "special": "inputs -|x| with a few NaN and inf: the op must be computed, not assumed to be the identity, "
               "and NaN and inf must propagate as in torch (tl.maximum/tl.minimum drop NaN unless "
               "propagate_nan=tl.PropagateNan.ALL)",
}


def _claimed_timing(figures) -> dict:
    if not isinstance(figures, dict) or not isinstance(figures.get("median_ms"), (int, float)):
        raise Rejection("cheat", "the timing run returned no usable figures")
    clean = {k: v for k, v in figures.items() if isinstance(v, (int, float, bool))}
    if clean["median_ms"] < 0 or clean.get("iqr_ms", 0) < 0:
        raise Rejection("cheat", "the timing run returned negative times")
    return clean


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
        phase("trials", judge.check_trials)
        phase("variants", judge.check_variants)
        phase("own_work", judge.check_own_work)
        phase("persistence", judge.check_final_persistence)
        if judge.on_gpu and judge.measure:
            phase("timing", contention.time_watched, judge)  # re-timed once if the GPU was shared
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


from harness.task_check import validate_job  # noqa: E402,F401  (the job harness.validate_task runs)


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
        _clone([x, {"k": x}])
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
