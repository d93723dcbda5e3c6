"""Correctness, checked from outside the candidate's process: the trials on the task's own inputs
under fresh seeds, the variants of those inputs, a second shape, and the persistence of outputs.

Every call is judged the same way (run_trial): the candidate's outputs against the reference's,
its inputs left as they were, no aliasing the reference does not do, and Triton launches on every
call once earlier calls launched them. The seeds are the job's own (per-job random), so a
candidate cannot recognise the judge's inputs; the variants (scaled, shifted, special values)
decide fragile numerics and identity-on-these-inputs cases on inputs that exercise the op.
"""
from __future__ import annotations

import math
import secrets
import time

import torch

from harness import compare, degenerate, inputs as judge_inputs
from harness.candidate_worker import _aliases
from harness.errors import Rejection
from harness.float64_opinion import as_exact_as_reference, reference_has_no_digit, reference_resolves
from harness.tensor_values import changed_inputs, content_digest, fingerprint, tensors

PERSISTENCE_WAIT_S = 0.05       # earlier outputs must stay intact at least this long after their call
# Where the reference itself is off, how much further a candidate may be. A cosine similarity at
# +1000 summed in another order than torch's lands 3-20x further from float64 than torch does (its
# one output is one draw of the rounding); a one-pass variance there lands 10**6x further.
ILL_CONDITIONED_SLACK = 100.0

_VARIANT_HINTS = {
    "scaled": "inputs x30: subtract the row max before exp, avoid overflow in intermediate values",
    "shifted": "inputs +1000: a one-pass E[x^2]-E[x]^2 variance cancels catastrophically; use two passes or Welford",
    "special": "inputs -|x| with a few NaN and inf: the op must be computed, not assumed to be the identity, "
               "and NaN and inf must propagate as in torch (tl.maximum/tl.minimum drop NaN unless "
               "propagate_nan=tl.PropagateNan.ALL)",
}


STRUCTURAL_ZERO_OPS = {"diag", "diag_embed", "tril", "triu"}


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def check_output(judge, got, expected, inputs, what: str, hint: str = "", special: bool = False,
                 variant: str | None = None):
    # torch multiplies the zeros it materialises (masked scores, diag, tril, triu) by the NaN/inf of
    # the special inputs and gets NaN; a kernel that never reads those zeros, as torch's own fused
    # kernels do not, is not held to them
    structural_zeros = any("attention" in op or op in STRUCTURAL_ZERO_OPS for op in judge.reference_ops)
    result, index = compare.compare_outputs(got, expected, special, masked_nan=special and structural_zeros)
    report = judge.report
    if result.extra_nonfinite:
        report["flags"].append(f"{result.extra_nonfinite} output elements are finite where torch's are not, "
                               "or the reverse, on the special-values inputs")
    if not result.ok and as_exact_as_reference(judge, got, expected, inputs):
        note = ("outside the tolerance of the reference, but no further from a float64 "
                "evaluation than the reference itself (reference rounding)")
        if note not in report["flags"]:
            report["flags"].append(note)
        result.ok = True
    if not result.ok and variant in ("scaled", "shifted") and not reference_resolves(judge, expected, inputs) \
            and (reference_has_no_digit(judge, expected, inputs)
                 or as_exact_as_reference(judge, got, expected, inputs, slack=ILL_CONDITIONED_SLACK)):
        # The reference itself is off here; a candidate within ILL_CONDITIONED_SLACK of its error,
        # or any candidate where the reference keeps no correct digit, is not judged on these
        # inputs; one further off (a one-pass variance at +1000) still is.
        report["flags"].append(f"not judged on the {variant} inputs: there the reference itself is further "
                               "from a float64 evaluation than its dtype's tolerance (ill-conditioned)")
        return
    if not result.ok:
        report["max_abs_err"] = _finite_or_none(result.max_abs_err)
        report["max_rel_err"] = _finite_or_none(result.max_rel_err)
        hints = [hint] if hint else []
        if result.unwritten:
            hints.append("fresh torch.empty* allocations are NaN-filled by the harness, so these are "
                         "output elements your kernel never wrote (masking/grid too small?)")
        raise Rejection("mismatch", f"output {index} differs from the reference in {what}: {result.problem}"
                        + "".join(f". Note: {h}" for h in hints))
    if what.startswith("trial"):  # the figures describe the task's own input distribution
        for key, error in (("max_abs_err", result.max_abs_err), ("max_rel_err", result.max_rel_err)):
            report[key] = max(report.get(key) or 0.0, error)


def run_trial(judge, inputs, what: str, hint: str = "", mode: str = "plain", expected=None, special=False,
              keep_as: str | None = None, variant: str | None = None):
    before = fingerprint(inputs)
    if expected is None:
        expected = judge.run_reference(inputs, record_ops=not judge.reference_ops)
    got, reply = judge.call_candidate(inputs, mode, what, keep_as)
    launches = int(reply.get("launches") or 0)
    judge.report["triton_launches"] += launches
    judge.candidate_ops |= set(reply.get("ops") or [])
    # CPU: the candidate's copy comes back; GPU: the judge reads the candidate's buffers itself.
    after = reply.pop("inputs_after", None) if not judge.on_gpu else judge.staged_view
    changed = changed_inputs(before, after if after is not None else inputs)
    if changed:
        raise Rejection("mismatch", f"ModelNew modified input {changed[0]} in place ({what}); inputs must be "
                                    "left unchanged: write results to a new tensor")
    _check_aliases(reply.get("aliases") or [], inputs, expected, what)
    try:
        check_output(judge, got, expected, inputs, what, hint, special, variant)
    finally:
        judge.last_float64_truth = None  # a float64 copy of the outputs: gigabytes at benchmark sizes
        if judge.on_gpu:  # what the judge freed goes back to the device, for the candidate's next call
            torch.cuda.empty_cache()
    if not launches and judge.dsl.startswith("triton") and judge.report["triton_launches"]:
        raise Rejection("cheat", f"{what} launched no Triton kernel though earlier calls did: the work "
                                 "must be done by your kernels on every call, observed or not")
    return got, expected


def _check_aliases(aliases, inputs, expected, what):
    allowed = {tuple(a) for a in _aliases(inputs, expected)}
    for alias in aliases:
        if tuple(alias) not in allowed:
            index, kind, other = alias
            raise Rejection("mismatch", f"output {index} shares memory with {kind} {other} ({what}); "
                                        "return new tensors, as the reference does")


def check_trials(judge):
    previous = None
    # The op recorder watches trial 0 and one other trial the candidate cannot predict; the
    # others (and every later call) run unobserved, as the user's calls will, and must still
    # launch Triton kernels and match.
    observed = {0, secrets.randbelow(judge.trials - 1) + 1 if judge.trials > 2 else 0}
    for trial in range(judge.trials):
        seed = judge.seed + 1 + trial
        inputs = judge_inputs.task_inputs(judge.task, seed, judge.device)
        hint = "earlier trials matched: the result may be cached or depend on state from a previous call" \
            if trial else ""
        expected = _informative_reference(judge, inputs) if trial == 0 else None
        got, expected = run_trial(judge, inputs, f"trial {trial} (seed {seed})", hint, expected=expected,
                                  mode="census" if trial in observed else "plain",
                                  keep_as="last_trial" if trial == judge.trials - 1 else None)
        if previous is not None:
            _check_kept(judge, -2, previous, f"trial {trial}")
        previous = content_digest(got, judge.digest_key)
        judge.report["trials"] = trial + 1
        if trial == 0:
            judge.first_seed = seed  # the ghost replays draw these inputs again rather than keep them
            judge.output_count = len(tensors(expected))
            judge.reference_aliases = {a[0] for a in _aliases(inputs, expected)}  # outputs that are views
        del inputs, expected, got  # no stale copy into the next trial (previous is a digest)
    judge.last_trial_output = previous
    judge.last_trial_seen = time.monotonic()
    # the trial-to-trial checks are done: only the last trial's outputs stay held (for the final one)
    judge.candidate.request("releasing the trials' outputs", cmd="forget", keep_named=True)


def _informative_reference(judge, inputs):
    """The reference's output on trial 0's inputs; where it is all zeros or rounding noise at the
    task's own initialisation, the reference's parameters are re-drawn (and sent to the candidate)
    so that a kernel that only writes zeros cannot pass, and a correct one is not judged by digits
    the reference does not have (harness.degenerate)."""
    expected = judge.run_reference(inputs, record_ops=True)
    if degenerate.all_zero(expected):
        noise = False
    elif degenerate.rounding_noise(judge.reference, inputs, expected, judge.device):
        noise = True
    else:
        return expected
    informative, note = degenerate.informative_output(judge.reference, inputs, judge.seed + 7, judge.device, noise)
    judge.last_float64_truth = None  # of the parameters before
    judge.report["flags"].append(note)
    if informative is None:
        return expected
    judge.sync()
    judge.send_model("loading the candidate with the re-drawn parameters")
    return informative


def check_final_persistence(judge):
    """The last trial's outputs, re-read after everything else ran (and at least a moment later)."""
    time.sleep(max(0.0, PERSISTENCE_WAIT_S - (time.monotonic() - judge.last_trial_seen)))
    _check_kept(judge, "last_trial", judge.last_trial_output,
                f"at least {PERSISTENCE_WAIT_S:g} s and several calls after the last trial")
    judge.last_trial_output = None  # memory: timing needs the room, in both processes
    judge.candidate.request("releasing earlier outputs", cmd="forget")


def _check_kept(judge, which, digest, when: str):
    reply = judge.candidate.request("re-reading earlier outputs", cmd="kept", index=which)
    now = reply.get("outputs")
    same = now is not None and len(tensors(now)) == len(digest) and \
        content_digest(now, judge.digest_key, like=digest) == digest
    if not same:
        raise Rejection("mismatch", f"an earlier call's output changed afterwards ({when}): outputs must stay "
                                    "intact after later calls (a reused buffer, or work still writing it?)")


def check_variants(judge):
    """The task's inputs scaled, shifted, and sign-flipped with special values; then another shape."""
    base = judge_inputs.task_inputs(judge.task, judge.seed + 101, judge.device)
    base_output = judge.run_reference(base)
    base_shapes = [t.shape for t in tensors(base_output)]
    base_nonfinite = judge_inputs.nonfinite_count(base_output)
    floating = judge_inputs.has_floating_input(base)
    del base_output, base  # memory: each variant draws its base again rather than keep it alive
    if floating:
        for index, name in enumerate(judge_inputs.VARIANTS):
            inputs = judge_inputs.variant(judge_inputs.task_inputs(judge.task, judge.seed + 101, judge.device),
                                          name, judge.seed + 200 + index)
            try:
                expected = judge.run_reference(inputs)
            except Exception:
                continue  # the reference does not take these: nothing to hold the candidate to
            if name != "special" and judge_inputs.nonfinite_count(expected) > base_nonfinite:
                continue
            run_trial(judge, inputs, f"the {name} inputs trial", _VARIANT_HINTS[name], expected=expected,
                      special=name == "special", variant=name)
            del inputs, expected
            judge.report.setdefault("input_variants", []).append(name)
    _check_second_shape(judge, judge_inputs.task_inputs(judge.task, judge.seed + 101, judge.device), base_shapes)


def _room_to_grow(judge, base, base_shapes) -> bool:
    largest = max([t.numel() for t in tensors(base)] + [math.prod(shape) for shape in base_shapes], default=0)
    if not judge.on_gpu:
        return grows(False, largest, 0, 0)
    free = (judge.report.get("memory") or {}).get("free_bytes") or 0
    return grows(True, largest, torch.cuda.max_memory_allocated(judge.device), free)


def grows(on_gpu: bool, largest_numel: int, judge_peak_bytes: int, free_bytes: int) -> bool:
    """Whether the second shape is larger than the task's (a grid capped at the task's own size
    passes every smaller shape): always on the CPU's shrunk sizes; on a GPU where 1.5x the judge's
    peak so far, twice over (the candidate's process holds as much), fits the free memory, and no
    tensor reaches 2**31 elements (a kernel written for the task's sizes may index in 32 bits: that is
    not what the second shape asks). Otherwise smaller: at benchmark sizes, memory is the limit."""
    if not on_gpu:
        return True
    return 1.5 * largest_numel + 1 < 2**31 and 3 * judge_peak_bytes < free_bytes


def _check_second_shape(judge, base, base_shapes):
    shapes = judge_inputs.second_shapes(base, grow=_room_to_grow(judge, base, base_shapes))
    while True:
        try:
            description, inputs = next(shapes)
        except StopIteration:
            return
        except torch.OutOfMemoryError:  # the next shape's inputs do not fit beside the task's
            torch.cuda.empty_cache()
            judge.report["flags"].append("no second shape tried: no device memory left for its inputs")
            return
        if judge.on_gpu and max(t.numel() for t in tensors(inputs)) >= 2**31 > max(t.numel() for t in tensors(base)):
            continue  # past the 32-bit sizes the task never reaches (the extra leading dim doubles)
        try:
            expected = judge.run_reference(inputs)
        except Exception:
            continue
        if [t.shape for t in tensors(expected)] == base_shapes:
            continue
        try:
            run_trial(judge, inputs, f"a second shape ({description})",
                      "a ModelNew must serve every shape its reference accepts, or raise a clear error",
                      expected=expected)
        except Rejection as rejection:
            if rejection.status != "runtime_error":
                raise
            judge.report["flags"].append(f"does not serve {description}: {rejection.reason[:200]}")
        judge.report["second_shape"] = description
        return
