"""The whole state of a search run, as one JSON file saved after every phase of every round.

Everything needed to continue lives here (candidates with their verdicts, arm counts, island
membership, the proposals awaiting evaluation), and every random choice is derived from
(options.seed, round), so a run reloaded from this file continues exactly as if never stopped.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from search.options import SearchOptions, options_from_dict

STATE_FILE = "search_state.json"

CandidateStatus = Literal["pending", "accepted", "failed", "proposal_failed", "duplicate"]


class Candidate(BaseModel):
    """One point of the search: the seed, or a child proposed from a parent."""

    id: str  # cand_000, cand_001, ... in creation order
    parent_id: str | None = None
    island: int | None = None  # evolve: the island that produced it
    round: int = 0
    seed: int = 0  # the seed handed to optimize()
    code: str | None = None
    status: CandidateStatus = "pending"
    verdict: dict | None = None  # harness Verdict.to_dict()
    error: str | None = None  # why there is no code (proposal failure) or a one-line failure
    duplicate_of: str | None = None
    meta: dict = Field(default_factory=dict)  # the proposal's meta, e.g. {"tunables": {...}}
    time_ms: float | None = None  # candidate median time, when measured
    speedup_vs_eager: float | None = None  # against the run's cached reference
    speedup_vs_compile: float | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


class ProgressPoint(BaseModel):
    """The best so far after a round: one step of the best-speedup plot."""

    candidates: int
    evaluated: int
    best_id: str | None = None
    best_time_ms: float | None = None
    best_speedup: float | None = None
    elapsed_s: float = 0.0


class Migration(BaseModel):
    round: int
    source: int
    target: int
    ids: list[str]


class SearchState(BaseModel):
    version: int = 1
    workflow: Literal["adaptive_search", "evolve"]
    options: dict
    run_dir: str | None = None
    status: Literal["running", "finished", "failed"] = "running"
    stop_reason: str | None = None
    round: int = 0  # rounds completed; round 0 is the seed's evaluation
    candidates: list[Candidate] = Field(default_factory=list)
    reference: dict | None = None  # {"eager": {...}, "compile": {...}}: first timings seen
    best_id: str | None = None
    rounds_since_improvement: int = 0
    elapsed_s: float = 0.0  # active search time, summed over resumes
    evaluations: int = 0  # codes handed to the evaluator (results-store hits included)
    history: list[ProgressPoint] = Field(default_factory=list)
    # adaptive_search: times each arm was chosen as a parent (given back when all its children fail)
    selections: dict[str, int] = Field(default_factory=dict)
    # parents chosen in the round now in progress, for the give-back rule
    round_parents: list[str] = Field(default_factory=list)
    # evolve: ids living on each island (children of the island plus migrants)
    islands: list[list[str]] = Field(default_factory=list)
    migrations: list[Migration] = Field(default_factory=list)

    # -- lookups -------------------------------------------------------------------------------
    @property
    def opts(self) -> SearchOptions:
        return options_from_dict(self.workflow, self.options)

    def get(self, cand_id: str) -> Candidate:
        for cand in self.candidates:
            if cand.id == cand_id:
                return cand
        raise KeyError(cand_id)

    @property
    def pending(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == "pending"]

    @property
    def arms(self) -> list[Candidate]:
        """Accepted candidates: the only ones a child can come from."""
        return [c for c in self.candidates if c.accepted]

    @property
    def best(self) -> Candidate | None:
        return self.get(self.best_id) if self.best_id else None

    def next_id(self) -> str:
        return f"cand_{len(self.candidates):03d}"

    @property
    def evaluated_count(self) -> int:
        return sum(1 for c in self.candidates if c.status in ("accepted", "failed"))

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        target = Path(path) if path else Path(self.run_dir or ".") / STATE_FILE
        write_json_atomic(target, self.model_dump(mode="json"))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchState":
        path = Path(path)
        if path.is_dir():
            path = path / STATE_FILE
        return cls.model_validate_json(path.read_text())


def write_json_atomic(path: Path, data) -> None:
    """Write JSON so a reader (or a kill -9) never sees half a file: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ChildPlan(BaseModel):
    """A child to ask for: which parent, and (evolve) which island it will live on."""

    parent_id: str
    island: int | None = None
