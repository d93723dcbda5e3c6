"""Token and latency totals over model calls, for `RunRecord.llm_usage` and the report."""
from __future__ import annotations

from collections.abc import Iterable

from generators.base import LLMUsage


def usage_totals(usages: Iterable[LLMUsage | dict]) -> dict:
    """Sum calls (failed ones included: they cost time and sometimes tokens)."""
    totals = {"calls": 0, "failed_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0}
    models: set[str] = set()
    for item in usages:
        usage = item if isinstance(item, LLMUsage) else LLMUsage.model_validate(item)
        totals["calls"] += 1
        totals["failed_calls"] += 0 if usage.ok else 1
        totals["prompt_tokens"] += usage.prompt_tokens
        totals["completion_tokens"] += usage.completion_tokens
        totals["latency_s"] += usage.latency_s
        models.add(usage.model)
    totals["latency_s"] = round(totals["latency_s"], 3)
    totals["models"] = sorted(models)
    return totals
