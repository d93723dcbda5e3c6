"""Memory, sizes and trust (issue 13): footprints from fake tensors, the free-memory check, shrinking
that keeps derived sizes consistent, tasks with an all-zero output, and contended timings."""
from __future__ import annotations

from pathlib import Path

import harness

HERE = Path(__file__).parent
TASKS = HERE / "tasks_harness"
CANDIDATES = HERE / "candidates"
ZERO_GATE = str(TASKS / "zero_gate.py")


def test_a_kernel_that_writes_zeros_is_rejected_on_a_task_that_is_zero_only_at_its_initialisation():
    verdict = harness.verify(ZERO_GATE, str(CANDIDATES / "zero_gate_writes_zeros.py"), device="cpu", timeout_s=60)
    assert verdict.status == "mismatch", verdict.summary


def test_the_honest_kernel_of_a_zero_output_task_is_accepted_and_the_verdict_says_how_it_was_judged():
    verdict = harness.verify(ZERO_GATE, str(CANDIDATES / "zero_gate_ok.py"), device="cpu", timeout_s=60)
    assert verdict.status == "accepted", verdict.summary
    assert any("parameters re-drawn" in flag for flag in verdict.flags)


def test_a_zero_output_task_is_validated_with_a_note_not_refused():
    check = harness.validate_task(ZERO_GATE, device="cpu")
    assert check.ok, check.problems
    assert any("all zeros at the task's own initialisation" in note for note in check.notes)
