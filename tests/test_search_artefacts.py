import json
import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from generators.base import CandidateInfo, GenContext, Proposal
from search import (
    SearchState,
    VerdictFile,
    format_progress,
    latest_run_progress,
    next_run_dir,
    parse_options,
    pool_evaluator,
    proposer_from_generator,
    read_progress,
    results_store_cache,
    run,
    start_search,
    with_cache,
)
from search.fakes import FakeEvaluator, FakeProposer, SimulatedKill, seed_code
from search.plots import speedup_figure


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    session = tmp_path_factory.mktemp("session")
    runs = {}
    for workflow, pairs in {
        "adaptive_search": ["max_candidates=16", "max_concurrent=3"],
        "evolve": ["max_candidates=16", "islands=2", "children_per_island=2", "migration_interval=1"],
    }.items():
        run_dir = next_run_dir(session / "output", workflow)
        state = start_search(workflow, seed_code(), run_dir, parse_options(workflow, pairs))
        runs[workflow] = (run(state, FakeProposer(fail_every=6), FakeEvaluator()), run_dir)
    return session, runs


def test_run_dirs_are_numbered_per_workflow(tmp_path):
    assert next_run_dir(tmp_path / "output", "evolve").name == "evolve_1"
    assert next_run_dir(tmp_path / "output", "evolve").name == "evolve_2"
    assert next_run_dir(tmp_path / "output", "adaptive_search").name == "adaptive_search_1"


@pytest.mark.parametrize("workflow", ["adaptive_search", "evolve"])
def test_every_candidate_has_its_code_and_verdict_on_disk(finished_runs, workflow):
    state, run_dir = finished_runs[1][workflow]
    for cand in state.candidates:
        record = json.loads((run_dir / "candidates" / f"{cand.id}.json").read_text())
        assert record["status"] == cand.status and record["parent_id"] == cand.parent_id
        code_file = run_dir / "candidates" / f"{cand.id}.py"
        assert code_file.exists() == (cand.code is not None)
        if cand.status in ("accepted", "failed"):
            assert record["verdict"]["status"] in ("ok", "compile_error")


@pytest.mark.parametrize("workflow", ["adaptive_search", "evolve"])
def test_summary_names_the_best_and_its_lineage(finished_runs, workflow):
    state, run_dir = finished_runs[1][workflow]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["counts"]["total"] == 16
    assert summary["options"]["max_candidates"] == 16
    best = summary["best"]
    assert best["id"] == state.best_id and best["lineage"][0] == "cand_000"
    assert best["lineage"][-1] == best["id"]
    assert best["speedup_vs_eager"] == max(c.speedup_vs_eager for c in state.arms)
    assert summary["history"][-1]["best_id"] == best["id"]


@pytest.mark.parametrize("workflow", ["adaptive_search", "evolve"])
def test_lineage_is_a_mermaid_graph_with_every_edge(finished_runs, workflow):
    state, run_dir = finished_runs[1][workflow]
    text = (run_dir / "lineage.mmd").read_text()
    assert text.startswith("graph TD\n")
    edges = set(re.findall(r"^\s*(cand_\d+) --> (cand_\d+)$", text, re.M))
    assert edges == {(c.parent_id, c.id) for c in state.candidates if c.parent_id}
    assert f"class {state.best_id} best" in text
    if workflow == "evolve":
        assert 'subgraph island_0["island 0"]' in text and "-. migrates .-> island_" in text


def test_best_speedup_plot_has_title_axes_and_units(finished_runs):
    state, run_dir = finished_runs[1]["adaptive_search"]
    assert (run_dir / "best_speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = speedup_figure(state).axes[0]
    assert "adaptive_search" in ax.get_title() and "candidates" in ax.get_title()
    assert "(count)" in ax.get_xlabel() and "speedup vs eager" in ax.get_ylabel() and "(x" in ax.get_ylabel()
    labels = ax.get_legend_handles_labels()[1]
    assert "best so far" in labels and "eager PyTorch (1.0x)" in labels
    best_line = next(line for line in ax.get_lines() if line.get_label() == "best so far")
    assert max(best_line.get_ydata()) == pytest.approx(max(c.speedup_vs_eager for c in state.arms))


def test_evolve_plot_has_one_line_per_island(finished_runs):
    state, _ = finished_runs[1]["evolve"]
    labels = speedup_figure(state).axes[0].get_legend_handles_labels()[1]
    assert {"island 0 best", "island 1 best", "best so far"} <= set(labels)


def test_report_snippet_embeds_plot_and_lineage(finished_runs):
    _, runs = finished_runs
    _, run_dir = runs["evolve"]
    text = (run_dir / "report_snippet.md").read_text()
    assert "![best speedup vs candidates evaluated](output/evolve_1/best_speedup.png)" in text
    assert "```mermaid\ngraph TD" in text and "| Options |" in text and "p_global=0.2" in text


def test_untimed_run_says_so_in_the_report(tmp_path):
    run_dir = next_run_dir(tmp_path / "output", "adaptive_search")
    opts = parse_options("adaptive_search", ["max_candidates=4"])
    run(start_search("adaptive_search", seed_code(), run_dir, opts), FakeProposer(), FakeEvaluator(timed=False))
    assert "No speed was measured" in (run_dir / "report_snippet.md").read_text()
    assert not (run_dir / "best_speedup.png").exists()  # no empty chart
    assert "no timings (CPU)" in format_progress(read_progress(run_dir))


# -- progress ------------------------------------------------------------------------------------
def test_progress_is_written_every_round_and_readable(tmp_path):
    run_dir = tmp_path / "output" / "adaptive_search_1"
    opts = parse_options("adaptive_search", ["max_candidates=12", "max_concurrent=2", "patience=99"])
    seen = []
    run(start_search("adaptive_search", seed_code(), run_dir, opts), FakeProposer(), FakeEvaluator(),
        on_round=lambda state: seen.append(read_progress(run_dir)))
    assert [p.candidates_done for p in seen] == sorted(p.candidates_done for p in seen)
    running, last = seen[1], seen[-1]
    assert running.status == "running" and running.budget == 12 and running.eta_s is not None
    assert last.status == "finished" and last.candidates_done == 12 and last.fraction == 1.0
    assert last.best_speedup > 1.0
    line = format_progress(last)
    assert "adaptive_search: 12/12 candidates" in line and "finished: max_candidates" in line
    assert "#" not in line  # no hand-made bar: displays draw `fraction` themselves
    assert "x vs eager" in line


def test_progress_reader_tolerates_missing_or_torn_files(tmp_path):
    assert read_progress(tmp_path) is None
    (tmp_path / "progress.json").write_text('{"workflow": "evol')
    assert read_progress(tmp_path) is None


def test_latest_run_is_the_most_recently_updated(finished_runs):
    session, runs = finished_runs
    run_dir, progress = latest_run_progress(session / "output")
    assert run_dir == runs["evolve"][1] and progress.workflow == "evolve"  # evolve ran last
    assert latest_run_progress(session / "nothing_here") is None


# -- adapters ------------------------------------------------------------------------------------
class FakeVerdict:
    def __init__(self, data):
        self.data = data

    def to_dict(self):
        return self.data


class FakePool:
    """DevicePool's submit(task_path, candidate_path, **kw) -> Future[Verdict], on threads."""

    def __init__(self):
        self.threads = ThreadPoolExecutor(2)
        self.submitted = []

    def submit(self, task_path, candidate_path, **kw):
        self.submitted.append((task_path, candidate_path, kw))
        code = open(candidate_path).read()

        def work():
            if "CRASH" in code:
                raise RuntimeError("worker died")
            return FakeVerdict({"status": "ok", "accepted": True, "code_len": len(code)})

        return self.threads.submit(work)


def test_pool_evaluator_keeps_order_and_turns_crashes_into_rejections(tmp_path):
    pool, finished = FakePool(), []
    evaluate = pool_evaluator(pool, tmp_path / "task.py", tmp_path / "scratch",
                              on_verdict=lambda code, v: finished.append(code), measure=True)
    verdicts = evaluate(["a = 1\n", "CRASH\n", "bb = 22\n"])
    assert [v["accepted"] for v in verdicts] == [True, False, True]
    assert verdicts[0]["code_len"] == 6 and verdicts[2]["code_len"] == 8
    assert "worker died" in verdicts[1]["summary"]
    assert sorted(finished) == sorted(["a = 1\n", "CRASH\n", "bb = 22\n"])
    assert all(kw == {"measure": True} for _, _, kw in pool.submitted)


def test_cached_evaluation_survives_a_crash_before_the_state_was_saved(tmp_path):
    """Verdicts reach the cache as they finish, so a kill that loses the round's state costs
    no re-evaluation on resume."""
    cache = VerdictFile(tmp_path / "verdicts.jsonl")
    inner = FakeEvaluator()

    def evaluate_then_die(codes):
        for code, verdict in zip(codes, inner(codes)):
            cache.put(code, verdict)
        if len(inner.batches) == 2:  # the seed's call returns; round 1's dies before returning
            raise SimulatedKill("after evaluating, before saving")
        return [cache.get(code) for code in codes]

    opts = parse_options("adaptive_search", ["max_candidates=7", "max_concurrent=3"])
    start_search("adaptive_search", seed_code(), tmp_path / "run", opts)
    with pytest.raises(SimulatedKill):
        run(SearchState.load(tmp_path / "run"), FakeProposer(), with_cache(evaluate_then_die, cache.get))

    saved = SearchState.load(tmp_path / "run")
    lost = [c.code for c in saved.pending]
    assert saved.round == 0 and len(lost) == 3  # round 1's verdicts never reached the state

    with open(tmp_path / "verdicts.jsonl", "a") as handle:
        handle.write('{"key": "torn')  # a kill mid-append leaves a torn last line
    reopened = VerdictFile(tmp_path / "verdicts.jsonl")  # a new process reads the file back
    fresh = FakeEvaluator()
    state = run(saved, FakeProposer(), with_cache(fresh, reopened.get, reopened.put))
    assert state.status == "finished"
    assert not set(fresh.evaluated) & set(inner.evaluated)  # the lost round came from the cache
    assert set(lost) <= set(inner.evaluated)


def test_proposer_from_generator_calls_optimize():
    calls = []

    class Stub:
        name = "stub"

        def optimize(self, ctx, parent, inspirations, seed):
            calls.append((ctx.op_name, parent.id, [i.id for i in inspirations], seed))
            return Proposal(code="x = 1\n")

    ctx = GenContext(op_name="relu", task_code="")
    propose = proposer_from_generator(Stub(), ctx)
    parent, other = CandidateInfo(id="cand_000", code="p"), CandidateInfo(id="cand_001", code="q")
    assert propose(parent, [other], 5).ok
    assert calls == [("relu", "cand_000", ["cand_001"], 5)]


def test_results_store_serves_a_resumed_search(tmp_path):
    from checkpoints.results import ResultsStore

    store = ResultsStore(tmp_path / "results.db")
    lookup, remember = results_store_cache(store, "task source", "cpu", session="s1", workflow="evolve")
    assert lookup("code") is None
    remember("code", {"status": "accepted", "accepted": True, "summary": "ok"})
    assert lookup("code")["accepted"] is True
    other_device, _ = results_store_cache(store, "task source", "cuda:0")
    assert other_device("code") is None  # a verdict holds for one device only

    first = FakeEvaluator()
    opts = parse_options("evolve", ["max_candidates=8", "islands=2"])
    run(start_search("evolve", seed_code(), tmp_path / "a", opts), FakeProposer(), with_cache(first, lookup, remember))
    again = FakeEvaluator()
    run(start_search("evolve", seed_code(), tmp_path / "b", opts), FakeProposer(), with_cache(again, lookup, remember))
    assert sum(first.evaluated.values()) > 0 and not again.evaluated  # all served from the store
