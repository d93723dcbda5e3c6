"""Search workflows (adaptive_search, evolve): find faster kernels than a verified seed.

The loops take two injected callables, so they run and are tested without the graph or a GPU:

    propose(parent: CandidateInfo, inspirations: list[CandidateInfo], seed: int) -> Proposal
    evaluate(codes: list[str]) -> list[dict]          # harness Verdict.to_dict() per code

    state = start_search("evolve", seed_code, run_dir, parse_options("evolve", ["islands=2"]))
    state = run(state, propose, evaluate)             # or run_round(state, ...) once per graph step
    state = SearchState.load(run_dir)                 # after a crash: continue with run(state, ...)
"""
from search.artefacts import next_run_dir, report_markdown, write_run_artefacts
from search.engine import load_search, open_search, run, run_round, start_search, stop_reason
from search.evaluators import (
    VerdictFile,
    pool_evaluator,
    proposer_from_generator,
    results_store_cache,
    with_cache,
)
from search.options import (
    AdaptiveSearchOptions,
    EvolveOptions,
    OptionError,
    SearchOptions,
    parse_options,
)
from search.progress import Progress, format_progress, format_worker, latest_run_progress, read_progress
from search.state import Candidate, SearchState

__all__ = [
    "AdaptiveSearchOptions", "Candidate", "EvolveOptions", "OptionError", "Progress",
    "SearchOptions", "SearchState", "VerdictFile", "format_progress", "format_worker", "latest_run_progress",
    "load_search", "next_run_dir", "open_search", "parse_options", "pool_evaluator", "proposer_from_generator",
    "read_progress", "report_markdown", "results_store_cache", "run", "run_round", "start_search", "stop_reason",
    "with_cache", "write_run_artefacts",
]
