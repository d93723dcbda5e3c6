"""The results store: verdicts keyed by task, code and device; LLM usage totals."""
from __future__ import annotations

import sqlite_utils

from checkpoints.results import ResultsStore, default_results_path, hash_text

VERDICT = {"status": "accepted", "summary": "ACCEPTED", "max_abs_err": 0.0, "triton_launches": 5,
           "timings": {"candidate": {"median_ms": 0.5, "iqr_ms": 0.01}, "eager": {"median_ms": 1.0, "iqr_ms": 0.02}},
           "speedup_vs_eager": 2.0, "versions": {"torch": "2.11.0", "triton": "3.6.0"}, "device_name": "H100"}


def test_results_live_under_akg_op_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_OP_HOME", str(tmp_path))
    assert default_results_path() == tmp_path / "results.db"
    ResultsStore()
    assert (tmp_path / "results.db").exists()


def test_record_and_lookup_by_task_code_and_device(tmp_path):
    store = ResultsStore(tmp_path / "results.db")
    task, code = hash_text("task source"), hash_text("code source")
    assert store.lookup_verdict(task, code, "cuda:0") is None
    store.record_verdict(task, code, "cuda:0", VERDICT, session="s1", workflow="kernelgen")
    assert store.lookup_verdict(task, code, "cuda:0") == VERDICT
    assert store.lookup_verdict(task, code, "cpu") is None
    assert store.lookup_verdict(task, hash_text("other code"), "cuda:0") is None
    row = next(sqlite_utils.Database(tmp_path / "results.db")["verdicts"].rows)
    assert (row["candidate_ms"], row["eager_ms"], row["triton_version"], row["session"]) == (0.5, 1.0, "3.6.0", "s1")
    assert row["created_at"]


def test_cached_verdict_runs_once_unless_forced(tmp_path):
    store = ResultsStore(tmp_path / "results.db")
    runs = []

    def run():
        runs.append(1)
        return dict(VERDICT, run=len(runs))

    first = store.cached_verdict("task", "code", "cpu", run)
    again = store.cached_verdict("task", "code", "cpu", run)
    assert len(runs) == 1 and again == first
    assert store.cached_verdict("task", "code", "cpu", run, force=True)["run"] == 2
    assert store.cached_verdict("task", "changed code", "cpu", run)["run"] == 3


def test_llm_totals_per_session(tmp_path):
    store = ResultsStore(tmp_path / "results.db")
    store.record_llm_call("s1", "kernelgen", {"prompt_tokens": 100, "completion_tokens": 20, "model": "m"})
    store.record_llm_call("s1", "evolve", {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5})
    store.record_llm_call("s2", "kernelgen", {"prompt_tokens": 1, "completion_tokens": 1})
    assert store.llm_totals("s1") == {"calls": 2, "prompt_tokens": 110, "completion_tokens": 25,
                                      "total_tokens": 135, "cost_usd": 0.5}
    assert store.llm_totals("nobody")["calls"] == 0


def test_a_verdict_is_served_again_only_by_the_same_judge_and_only_when_definitive(tmp_path):
    import harness
    store = ResultsStore(tmp_path / "results.db")
    task, code = hash_text("task source"), hash_text("code source")
    judge = harness.judge_key("cpu", "triton_cuda", trials=5)
    store.record_verdict(task, code, "cpu", VERDICT, judge=judge)
    store.record_verdict(task, hash_text("slow code"), "cpu", dict(VERDICT, status="timeout"), judge=judge)
    definitive = harness.CACHEABLE_STATUSES
    assert store.lookup_verdict(task, code, "cpu", judge, definitive) == VERDICT
    # another harness version, trial count or dsl is another judge
    for other in (judge.replace(harness.HARNESS_VERSION, "older"), harness.judge_key("cpu", "triton_cuda", trials=3),
                  harness.judge_key("cpu", "triton_ascend", trials=5)):
        assert store.lookup_verdict(task, code, "cpu", other, definitive) is None
    # a timeout says nothing about the code: judged afresh
    assert store.lookup_verdict(task, hash_text("slow code"), "cpu", judge, definitive) is None


def test_any_change_to_the_judges_source_is_another_judge(tmp_path):
    # the cache key follows the judge's code, not a version string someone must remember to bump
    import importlib.util
    import shutil
    import sys
    from pathlib import Path

    import harness

    copy = tmp_path / "harness"
    shutil.copytree(Path(harness.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def version() -> str:
        spec = importlib.util.spec_from_file_location("verdict_copy", copy / "verdict.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["verdict_copy"] = module  # dataclasses look their module up
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules["verdict_copy"]
        return module.HARNESS_VERSION

    assert version() == harness.HARNESS_VERSION
    trials = copy / "trials.py"
    trials.write_text(trials.read_text().replace("informative, note", "informative, note_", 1))
    assert version() != harness.HARNESS_VERSION


def test_nothing_secret_is_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-store-test-" + "9" * 20)
    store = ResultsStore(tmp_path / "results.db")
    leaked = dict(VERDICT, summary="REJECTED: raised sk-store-test-" + "9" * 20, log_tail="token=abcdef123456")
    store.record_verdict(hash_text("t"), hash_text("c"), "cpu", leaked)
    store.record_llm_call("s1", "kernelgen", {"model": "m", "prompt_tokens": 1, "note": "Bearer abcdefghij0123"})
    data = (tmp_path / "results.db").read_bytes()
    assert b"sk-store-test" not in data and b"abcdef123456" not in data and b"abcdefghij0123" not in data
