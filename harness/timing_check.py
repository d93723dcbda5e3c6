"""The timing phase (GPU only): the candidate times itself in its own process, and the judge
decides whether those figures can be believed before it reports them beside its own baselines.

A candidate could behave one way while observed and another while timed, or return earlier
results instead of computing; so the timed calls alternate between two input sets, every timed
call's outputs come back as checksums the judge compares with its own, the last timed outputs
are checked in full, and the timed calls must launch Triton kernels. A claimed time below what
moving the inputs and outputs takes at peak bandwidth cannot be real. The baselines are timed after
the candidate's process is gone, so nothing of the candidate's runs on the device meanwhile.
"""
from __future__ import annotations

import torch

from harness import inputs as judge_inputs
from harness.candidate_worker import output_checksum
from harness.errors import Rejection, error_text
from harness.tensor_values import clone, content_digest, tensors
from harness.trials import check_output, run_trial

SPEEDUP_SUSPICIOUS = 10.0
ROOFLINE_IMPOSSIBLE = 0.8       # claimed time below 80 % of the bandwidth floor cannot be real
TIMED_CALLS = 100
TIMED_SEED, ALTERNATE_SEED = 301, 302   # offsets from the job's seed: the timed inputs, the alternate set
CHECKSUM_RTOL = 1e-5   # of the sum of magnitudes: room for atomics' reordering, none for another answer


def time_candidate(judge):
    """The candidate's timing, in its own process, and the checks of what it claims."""
    report = judge.report
    # Fresh values (never the trials', whose outputs the candidate has seen), then two input sets
    # alternating in place during the timed calls: a candidate that caches by address returns
    # the old answer and is caught. What the candidate's own (checked) outputs sum to, per input
    # set: a deterministic kernel gives the same sums on every timed call.
    alternate_sums, alternate_digest = _checked_alternate(judge)
    inputs = judge_inputs.task_inputs(judge.task, judge.seed + TIMED_SEED, judge.device)
    checked, expected = run_trial(judge, inputs, "the call before timing (no op recorder active)")
    expected_sums = [output_checksum(checked), alternate_sums]
    del checked
    alternate = judge_inputs.task_inputs(judge.task, judge.seed + ALTERNATE_SEED, judge.device)
    if content_digest(alternate, judge.digest_key) != alternate_digest:  # get_inputs() ignores the seed:
        # both trials again, the timed inputs' last, as the timed calls expect
        expected = None
        expected_sums[1] = output_checksum(run_trial(judge, alternate, "the alternate inputs of timing")[0])
        checked, expected = run_trial(judge, inputs, "the call before timing (no op recorder active)")
        expected_sums[0] = output_checksum(checked)
        del checked
    alternate_markers, _ = judge.stage_inputs(alternate, "alternate", "timing the candidate")
    del alternate  # the candidate's copy is the one timed
    claimed = judge.candidate.request("timing the candidate", cmd="time", calls=TIMED_CALLS,
                                      alternate=alternate_markers)
    last = clone(claimed.get("outputs"))
    check_output(judge, last, expected, inputs, "the call after timing",
                 "the outputs of timed calls are checked too: behave the same whether or not you are observed")
    _check_timed_checksums(claimed.get("checksums") or [], expected_sums)
    if judge.dsl.startswith("triton") and int(claimed.get("launches") or 0) < TIMED_CALLS:
        raise Rejection("cheat", f"the {TIMED_CALLS} timed calls launched {claimed.get('launches')} Triton kernels: "
                                 "timed calls must do the work, not return earlier results")
    timings = {"candidate": _claimed_timing(claimed.get("timing"))}
    if timings["candidate"].get("off_stream"):
        report["flags"].append(
            "timed to the device synchronise: the call's work outlasted its own stream (work on other "
            f"streams), so its {timings['candidate']['median_ms']:.4f} ms includes the host's wake-up after "
            f"the synchronise, less about {timings['candidate'].get('sync_overhead_ms', 0):.4f} ms measured idle")
    report["timings"] = timings


def time_baselines(judge):
    """Eager and torch.compile timed in the judge's process, on the inputs the candidate was timed
    on, and the speed figures. Called once the candidate's process is gone: a thread of its own
    could otherwise keep the GPU busy while they are timed and make the baselines look slow (the
    contention check leaves out the job's own processes)."""
    from harness.roofline import roofline
    from harness.timing import HEAD_START_MS, L2Flusher, sync_overhead_ms, time_callable
    from torch.utils.flop_counter import FlopCounterMode

    report = judge.report
    timings = report["timings"]
    inputs = judge_inputs.task_inputs(judge.task, judge.seed + TIMED_SEED, judge.device)
    flush = L2Flusher()
    overhead = sync_overhead_ms(flush)
    with torch.no_grad():
        cached = judge.reference_timings or {}
        timings["eager"] = cached.get("eager") or time_callable(judge.reference, inputs, flush=flush,
                                                                 overhead_ms=overhead)
        if cached.get("compile"):
            timings["compile"] = cached["compile"]
        else:
            try:
                compiled = torch.compile(judge.reference)
                compiled(*inputs)
                timings["compile"] = time_callable(compiled, inputs, flush=flush, overhead_ms=overhead)
            except Exception as error:
                report["flags"].append(f"torch.compile baseline failed: {error_text(error)[:200]}")
        flop_counter = FlopCounterMode(display=False)
        with flop_counter:
            output = judge.reference(*inputs)
    candidate_ms = timings["candidate"]["median_ms"]
    for baseline in ("eager", "compile"):
        if baseline in timings and candidate_ms > 0:
            report[f"speedup_vs_{baseline}"] = timings[baseline]["median_ms"] / candidate_ms
    moved = tensors(inputs) + tensors(output)
    traffic = sum(t.numel() * t.element_size() for t in moved)
    figures = roofline(traffic_bytes=traffic, flops=flop_counter.get_total_flops(), median_ms=candidate_ms,
                       device_name=report["device_name"], dtype=moved[-1].dtype)
    report["roofline"] = figures
    if candidate_ms < ROOFLINE_IMPOSSIBLE * figures["memory_bound_ms"]:
        raise Rejection("cheat", f"the claimed time {candidate_ms:.4f} ms is impossible: moving the "
                                 f"{traffic} bytes of inputs and outputs takes at least "
                                 f"{figures['memory_bound_ms']:.4f} ms at peak bandwidth")
    if candidate_ms < figures["memory_bound_ms"]:
        report["flags"].append(
            f"suspicious: {candidate_ms:.4f} ms is below the {figures['memory_bound_ms']:.4f} ms that moving "
            f"{traffic} bytes takes at peak bandwidth")
    launch_ms = (timings["candidate"].get("launch_us") or 0) / 1000
    if launch_ms > HEAD_START_MS:
        report["flags"].append(
            f"host-bound: issuing one call takes {launch_ms:.2f} ms of host time, more than the "
            f"{HEAD_START_MS:g} ms head start the timing gives it, so its time includes host time")
    elif launch_ms > candidate_ms:
        report["flags"].append(
            f"launch-bound: issuing one call takes {launch_ms:.3f} ms of host time, more than its "
            f"{candidate_ms:.3f} ms on the device; called back to back (a training loop, do_bench) it "
            "runs at the host's pace unless captured in a CUDA graph")
    for baseline in ("eager", "compile"):
        speedup = report.get(f"speedup_vs_{baseline}") or 0
        if speedup > SPEEDUP_SUSPICIOUS:
            report["flags"].append(f"suspicious: {speedup:.1f}x faster than {baseline}")


def _checked_alternate(judge):
    """The alternate input set's trial, run first and kept as its checksums and digest only: the
    set is drawn again for the timed calls. At benchmark sizes two input sets beside the trial's
    outputs and the float64 opinion's slices do not fit in the judge's share of the device (an
    8.6 GB cumsum ran out of memory)."""
    alternate = judge_inputs.task_inputs(judge.task, judge.seed + ALTERNATE_SEED, judge.device)
    checked = run_trial(judge, alternate, "the alternate inputs of timing")[0]
    return output_checksum(checked), content_digest(alternate, judge.digest_key)


def _check_timed_checksums(checksums, expected_sums):
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


def _claimed_timing(figures) -> dict:
    if not isinstance(figures, dict) or not isinstance(figures.get("median_ms"), (int, float)):
        raise Rejection("cheat", "the timing run returned no usable figures")
    clean = {k: v for k, v in figures.items() if isinstance(v, (int, float, bool))}
    if clean["median_ms"] < 0 or clean.get("iqr_ms", 0) < 0:
        raise Rejection("cheat", "the timing run returned negative times")
    return clean
