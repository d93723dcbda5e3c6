"""A killed search, reloaded from its state file, finishes exactly like one never interrupted,
without evaluating (or proposing) anything twice."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from search import SearchState, VerdictFile, open_search, parse_options, run, start_search, with_cache
from search.evaluators import code_key
from search.fakes import FakeEvaluator, FakeProposer, SimulatedKill, seed_code

OPTIONS = {
    # evolve: 3 islands x 1 child, 2 in flight -> two evaluator calls per round, so kills land
    # both between rounds and between the chunks of one round.
    "evolve": ["islands=3", "max_concurrent=2", "max_candidates=22", "migration_interval=2", "patience=50"],
    "adaptive_search": ["max_concurrent=3", "max_candidates=22", "patience=50"],
}


def fingerprint(state: SearchState) -> list[tuple]:
    return [(c.id, c.parent_id, c.island, c.round, c.code, c.status, c.time_ms) for c in state.candidates]


def uninterrupted(workflow, run_dir):
    opts = parse_options(workflow, OPTIONS[workflow])
    proposer, evaluator = FakeProposer(fail_every=5), FakeEvaluator()
    state = run(start_search(workflow, seed_code(), run_dir, opts), proposer, evaluator)
    return state, proposer, evaluator


@pytest.mark.parametrize("workflow", ["adaptive_search", "evolve"])
def test_resume_after_kills_repeats_no_work_and_ends_the_same(tmp_path, workflow):
    reference, ref_proposer, ref_evaluator = uninterrupted(workflow, tmp_path / "reference")

    run_dir = tmp_path / "killed"
    opts = parse_options(workflow, OPTIONS[workflow])
    start_search(workflow, seed_code(), run_dir, opts)
    evaluated: Counter = Counter()
    proposals = 0
    kills = 0
    # Kill the worker on the 3rd, then 2nd, then 4th evaluator call of each new process.
    for kill_on_call in (3, 2, 4, None):
        state = SearchState.load(run_dir)  # a fresh process knows only the state file
        proposer, evaluator = FakeProposer(fail_every=5), FakeEvaluator(kill_on_call=kill_on_call)
        try:
            state = run(state, proposer, evaluator)
        except SimulatedKill:
            kills += 1
        evaluated.update(evaluator.evaluated)
        proposals += proposer.calls
    assert kills == 3

    final = SearchState.load(run_dir)
    assert final.status == "finished"
    assert fingerprint(final) == fingerprint(reference)
    assert max(evaluated.values()) == 1  # nothing evaluated twice across the four processes
    assert sum(evaluated.values()) == sum(ref_evaluator.evaluated.values())
    assert proposals == ref_proposer.calls  # proposals saved before evaluation are not re-asked


def test_a_kill_inside_a_round_keeps_the_proposed_children(tmp_path):
    opts = parse_options("evolve", OPTIONS["evolve"])
    start_search("evolve", seed_code(), tmp_path, opts)
    # call 1: the seed; call 2: first chunk of round 1; call 3 (killed): second chunk.
    with pytest.raises(SimulatedKill):
        run(SearchState.load(tmp_path), FakeProposer(), FakeEvaluator(kill_on_call=3))
    saved = SearchState.load(tmp_path)
    round_one = [c for c in saved.candidates if c.round == 1]
    assert len(round_one) == 3 and saved.round == 0
    assert [c.status for c in round_one].count("pending") == 1  # the first chunk's two are settled

    proposer = FakeProposer()
    evaluator = FakeEvaluator()
    resumed = run(SearchState.load(tmp_path), proposer, evaluator, until=lambda s: s.round >= 1)
    assert resumed.round == 1 and proposer.calls == 0
    assert evaluator.batches == [[round_one[2].code]]  # only the unfinished child


def test_stopping_between_rounds_and_continuing_is_seamless(tmp_path):
    reference, _, _ = uninterrupted("adaptive_search", tmp_path / "reference")
    opts = parse_options("adaptive_search", OPTIONS["adaptive_search"])
    state = start_search("adaptive_search", seed_code(), tmp_path / "run", opts)
    state = run(state, FakeProposer(fail_every=5), FakeEvaluator(), until=lambda s: s.round >= 2)
    assert state.status == "running" and state.round == 2
    # One round per call, as a graph step would do it.
    state = SearchState.load(tmp_path / "run")
    while state.status == "running":
        state = run(state, FakeProposer(fail_every=5), FakeEvaluator(), until=lambda s: True)
    assert fingerprint(state) == fingerprint(reference)


def test_open_search_starts_once_then_resumes(tmp_path):
    opts = parse_options("adaptive_search", ["max_candidates=6"])
    first = open_search("adaptive_search", seed_code(), tmp_path, opts)
    first = run(first, FakeProposer(), FakeEvaluator(), until=lambda s: s.round >= 1)
    again = open_search("adaptive_search", "ignored: the run exists", tmp_path, opts)
    assert again.round == 1 and again.candidates[0].code == seed_code()
    with pytest.raises(ValueError, match="holds a run of adaptive_search, not evolve"):
        open_search("evolve", seed_code(), tmp_path)


WORKER = r"""
import sys, time
from search import SearchState, VerdictFile, run, with_cache
from search.evaluators import code_key
from search.fakes import FakeEvaluator, FakeProposer

run_dir, log = sys.argv[1], sys.argv[2]
cache = VerdictFile(run_dir + "/verdicts.jsonl")
inner = FakeEvaluator()

def evaluate(codes):
    time.sleep(0.05)  # slow enough to be killed mid-run
    verdicts = inner(codes)
    for code, verdict in zip(codes, verdicts):
        cache.put(code, verdict)
        with open(log, "a") as handle:
            handle.write(code_key(code) + "\n")  # logged once its verdict is safe in the cache
    return verdicts

run(SearchState.load(run_dir), FakeProposer(fail_every=5), with_cache(evaluate, cache.get))
"""


def test_kill_9_of_a_worker_process_then_resume(tmp_path):
    """The real thing: a worker process is SIGKILLed mid-search; this process resumes it."""
    reference, _, _ = uninterrupted("evolve", tmp_path / "reference")
    run_dir, log = tmp_path / "run", tmp_path / "evaluated.log"
    start_search("evolve", seed_code(), run_dir, parse_options("evolve", OPTIONS["evolve"]))
    repo_root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(run_dir), str(log)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.poll() is None:
        if SearchState.load(run_dir).round >= 2:
            break
        time.sleep(0.02)
    assert worker.poll() is None, "the worker finished before it could be killed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_at = SearchState.load(run_dir)
    assert killed_at.status == "running"

    cache = VerdictFile(run_dir / "verdicts.jsonl")
    resumed_evaluator = FakeEvaluator()
    final = run(SearchState.load(run_dir), FakeProposer(fail_every=5),
                with_cache(resumed_evaluator, cache.get, cache.put))
    assert fingerprint(final) == fingerprint(reference)
    worker_keys = log.read_text().split()
    assert len(worker_keys) == len(set(worker_keys))  # the worker never repeated itself
    resumed_keys = {code_key(code) for code in resumed_evaluator.evaluated}
    assert worker_keys and not set(worker_keys) & resumed_keys  # nor did the resume repeat it
