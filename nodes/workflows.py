"""Which generation workflows a session may choose."""
from __future__ import annotations

BUILTIN = ["kernelgen"]


def available_workflows() -> list[str]:
    return list(BUILTIN)
