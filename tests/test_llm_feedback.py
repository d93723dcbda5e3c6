"""Verdict → fixer feedback: classified, with the figures and log lines that matter, bounded."""
from __future__ import annotations

import pytest

from generators.feedback import classify, describe_performance, relevant_log, summarize_attempt, summarize_verdict

TRACEBACK_LOG = (
    "collecting inputs\n" + "noise line\n" * 300 + "Traceback (most recent call last):\n"
    '  File "candidate.py", line 12, in forward\n'
    "    relu_kernel[grid](x, out, n)\n"
    "TypeError: dynamic_func() missing 1 required positional argument: 'BLOCK'\n"
)


def test_compile_error_keeps_the_error_and_drops_noise():
    verdict = {
        "status": "compile_error",
        "accepted": False,
        "summary": "triton.compiler.errors.CompilationError at 7:4",
        "log_tail": "\x1b[31m" + TRACEBACK_LOG.replace("TypeError", "CompilationError") + "\x1b[0m",
    }
    text = summarize_verdict(verdict)
    assert text.startswith("[COMPILE ERROR] triton.compiler.errors.CompilationError at 7:4")
    assert "CompilationError: dynamic_func()" in text
    assert "noise line" not in text  # the log starts at the traceback
    assert "\x1b[" not in text


def test_mismatch_shows_error_figures():
    verdict = {"status": "mismatch", "summary": "outputs differ on seed 1", "max_abs_err": 0.3787, "max_rel_err": 1.0}
    text = summarize_verdict(verdict)
    assert "[MISMATCH] outputs differ on seed 1" in text
    assert "max_abs_err=0.3787" in text and "max_rel_err=1" in text
    assert "Hint:" in text


def test_the_harness_verdict_word_is_not_repeated():
    text = summarize_verdict({"status": "mismatch", "summary": "REJECTED (mismatch): output 0 differs"})
    assert text.startswith("[MISMATCH] output 0 differs")
    assert summarize_verdict({"status": "accepted", "summary": "ACCEPTED: matches"}).startswith("[ACCEPTED] matches")


def test_cheat_lists_what_was_detected():
    verdict = {
        "status": "cheat",
        "summary": "no Triton kernel computed the output",
        "triton_launches": 0,
        "torch_ops_left": ["aten::relu"],
        "flags": ["output_equals_reference_call"],
    }
    text = summarize_verdict(verdict)
    assert "[CHEAT DETECTED]" in text
    assert "triton kernel launches: 0" in text
    assert "aten::relu" in text and "output_equals_reference_call" in text


@pytest.mark.parametrize(
    "status,label",
    [("timeout", "TIMEOUT"), ("runtime_error", "RUNTIME ERROR"), ("crash", "CRASH"), ("oom", "OUT OF MEMORY"),
     ("invalid", "INVALID CANDIDATE"), ("weird_new_status", "FAILED")],
)
def test_every_status_has_a_label(status, label):
    assert summarize_verdict({"status": status}).startswith(f"[{label}]")


def test_slower_than_reference():
    verdict = {
        "status": "accepted",
        "accepted": True,
        "summary": "correct",
        "timings": {"candidate_ms": 0.2, "eager_ms": 0.1, "compile_ms": 0.09},
        "speedup_vs_eager": 0.5,
        "speedup_vs_compile": 0.45,
    }
    assert classify(verdict) == "slower"
    text = summarize_verdict(verdict)
    assert text.startswith("[SLOWER THAN REFERENCE]")
    assert "candidate_ms=0.2" in text and "speedup_vs_eager=0.5x" in text


def test_accepted_and_fast():
    verdict = {"status": "accepted", "accepted": True, "speedup_vs_eager": 1.8, "log_tail": "all good"}
    text = summarize_verdict(verdict)
    assert text.startswith("[ACCEPTED]") and "speedup_vs_eager=1.8x" in text
    assert "all good" not in text  # nothing to fix: no log


def test_missing_keys_are_tolerated():
    assert summarize_verdict({}).startswith("[FAILED]")
    assert summarize_verdict({"accepted": True}).startswith("[ACCEPTED]")
    assert summarize_verdict({"status": "mismatch", "max_abs_err": None, "timings": "n/a"}).startswith("[MISMATCH]")


@pytest.mark.parametrize("max_chars", [200, 500, 2000])
def test_length_is_bounded_and_the_exception_survives(max_chars):
    verdict = {"status": "runtime_error", "summary": "x" * 5000, "log_tail": TRACEBACK_LOG * 20}
    text = summarize_verdict(verdict, max_chars=max_chars)
    assert len(text) <= max_chars
    verdict["summary"] = "kernel raised"
    text = summarize_verdict(verdict, max_chars=max_chars)
    assert len(text) <= max_chars
    if max_chars >= 500:
        assert "missing 1 required positional argument" in text


def test_relevant_log_keeps_head_and_tail_of_a_long_traceback():
    log = "Traceback (most recent call last):\n" + "".join(f"  frame {i}\n" for i in range(500)) + "ValueError: boom\n"
    text = relevant_log(log, 400)
    assert len(text) <= 400
    assert text.startswith("Traceback") and text.rstrip().endswith("ValueError: boom")
    assert "chars cut" in text


def test_attempt_history_line():
    line = summarize_attempt(2, {"status": "mismatch", "summary": "wrong values", "max_abs_err": 0.5})
    assert line == "attempt 2: MISMATCH: wrong values (error: max_abs_err=0.5)"
    assert len(summarize_attempt(1, {"status": "compile_error", "summary": "y" * 1000})) <= 240


def test_describe_performance_flattens_nested_figures():
    verdict = {"timings": {"candidate": {"median_ms": 0.1}}, "roofline": {"fraction_of_peak_bw": 0.8}}
    text = describe_performance(verdict)
    assert "candidate.median_ms=0.1" in text and "fraction_of_peak_bw=0.8" in text
    assert describe_performance({}).startswith("no measurements")
