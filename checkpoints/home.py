"""Where akg-op keeps its own files: `$AKG_OP_HOME` (default `~/.akg_op`)."""
from __future__ import annotations

import os
from pathlib import Path


def akg_home() -> Path:
    home = Path(os.environ.get("AKG_OP_HOME") or "~/.akg_op").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def checkpoints_path() -> Path:
    return akg_home() / "checkpoints.sqlite"


def results_path() -> Path:
    return akg_home() / "results.db"


def env_cache_path() -> Path:
    return akg_home() / "env.json"
