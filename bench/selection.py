"""--only's rule, shared by the benchmark scripts."""
from __future__ import annotations

from pathlib import Path


def matches(task: Path, pattern: str, tasks: list[Path]) -> bool:
    """A pattern that names a task exactly selects that task alone (act_relu, not act_relu_inplace),
    any other pattern every task whose name contains it."""
    if any(t.stem == pattern for t in tasks):
        return task.stem == pattern
    return pattern in task.stem
