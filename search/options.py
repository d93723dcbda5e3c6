"""Options of the two search workflows, settable from the CLI as `--option key=value` strings.

Defaults are sized for one GPU: an evaluation (compile, correctness over several seeds, timing of the
candidate, eager and torch.compile) costs roughly 15-40 s there, so with 4 candidates in flight
adaptive_search's 40 candidates take about 10-25 min and evolve's 80 about 20-50 min. The time budget
is the hard ceiling that keeps a run inside its advertised duration (30 min / 60 min).
"""
from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

WORKFLOWS = ("adaptive_search", "evolve")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class OptionError(ValueError):
    """A one-line, user-facing complaint about an `--option key=value` string."""


class SearchOptions(BaseModel):
    """Options shared by both workflows."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_candidates: int = Field(40, ge=2, description="candidates in total, the seed included")
    max_concurrent: int = Field(4, ge=1, description="candidates evaluated at the same time")
    time_budget_s: float = Field(1800.0, gt=0, description="wall-clock budget; accepts 90s, 25m, 1h")
    patience: int = Field(5, ge=1, description="rounds without a better best before stopping")
    min_improvement: float = Field(
        0.01, ge=0, lt=1, description="relative gain in best time that counts as an improvement"
    )
    inspirations: int = Field(2, ge=0, le=5, description="other candidates shown to optimize()")
    proposal_retries: int = Field(2, ge=0, le=10, description="re-asks when a proposal repeats old code")
    max_rounds: int | None = Field(None, ge=1, description="optional cap on rounds")
    seed: int = Field(0, description="seeds every random choice of the search")
    require_timings: bool = Field(
        True, description="stop after the seed when nothing was timed (CPU): there is nothing to rank"
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="where candidates are evaluated: local (one worker per GPU) or ray "
        "(RAY_ADDRESS's cluster, else a local instance); default $AKG_OP_EXECUTOR or local"
    )

    @field_validator("time_budget_s", mode="before")
    @classmethod
    def _parse_duration(cls, value):
        # "25m" / "1h" read better on a command line than 1500.
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError("expected seconds or a duration like 90s, 25m, 1h")
            number, unit = match.groups()
            return float(number) * _UNIT_SECONDS[unit.lower() if unit else None]
        return value


class AdaptiveSearchOptions(SearchOptions):
    """UCB search: every accepted candidate is an arm."""

    workflow: Literal["adaptive_search"] = "adaptive_search"
    ucb_c: float = Field(1.414, ge=0, description="weight of the UCB exploration term")


class EvolveOptions(SearchOptions):
    """Island-model evolution."""

    workflow: Literal["evolve"] = "evolve"
    max_candidates: int = Field(80, ge=2, description="candidates in total, the seed included")
    time_budget_s: float = Field(3600.0, gt=0, description="wall-clock budget; accepts 90s, 25m, 1h")
    patience: int = Field(8, ge=1, description="rounds without a better best before stopping")
    islands: int = Field(4, ge=1, le=64, description="number of island populations")
    children_per_island: int = Field(1, ge=1, description="children each island makes per round")
    elite_size: int = Field(2, ge=1, description="island elites: parents and migrants")
    migration_interval: int = Field(3, ge=1, description="rounds between migrations")
    p_global: float = Field(0.2, ge=0, le=1, description="chance a parent comes from the global elites")
    global_elite_size: int = Field(4, ge=1, description="size of the global elite pool")


OPTION_CLASSES: dict[str, type[SearchOptions]] = {
    "adaptive_search": AdaptiveSearchOptions,
    "evolve": EvolveOptions,
}


def options_class(workflow: str) -> type[SearchOptions]:
    try:
        return OPTION_CLASSES[workflow]
    except KeyError:
        raise OptionError(f"unknown workflow {workflow!r} (known: {', '.join(WORKFLOWS)})") from None


# Names the README and users write for options whose field carries its unit.
ALIASES = {"time_budget": "time_budget_s"}


def _split_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise OptionError(f"option {text!r} is not key=value")
    key = key.replace("-", "_")
    return ALIASES.get(key, key), value


def _one_line(error: ValidationError, given: dict[str, str]) -> str:
    first = error.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else "?"
    shown = given.get(key, first.get("input"))
    message = first["msg"].removeprefix("Value error, ")
    return f"bad value for {key}: {shown!r} ({message})"


def parse_options(workflow: str, pairs: list[str] | None = None, **overrides) -> SearchOptions:
    """Build validated options from `key=value` strings (later ones win) and keyword overrides.

    Raises OptionError with a single line naming the offending key, e.g.
    "unknown option 'islnds' for evolve (known: ...)" or "bad value for p_global: '2' (...)".
    """
    cls = options_class(workflow)
    known = sorted(name for name in cls.model_fields if name != "workflow")
    given: dict[str, str] = {}
    for text in pairs or []:
        key, value = _split_pair(text)
        if key not in known:
            raise OptionError(f"unknown option {key!r} for {workflow} (known: {', '.join(known)})")
        given[key] = value
    values: dict = {k: (None if v.lower() in ("none", "null") else v) for k, v in given.items()}
    if "executor" not in values and os.environ.get("AKG_OP_EXECUTOR"):
        given["executor"] = values["executor"] = os.environ["AKG_OP_EXECUTOR"]
    values.update(overrides)
    try:
        return cls(**values)
    except ValidationError as error:
        raise OptionError(_one_line(error, given)) from None


def options_from_dict(workflow: str, data: dict) -> SearchOptions:
    """Rebuild options saved in a state file."""
    return options_class(workflow).model_validate({**data, "workflow": workflow})
