"""The session registry: one row per session, so `akg-op sessions` stays fast with hundreds.

The checkpointer holds the truth (full state); this table is a summary the CLI refreshes after
every step.
"""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

from checkpoints.home import checkpoints_path

TABLE = "akg_sessions"


class SessionRegistry:
    def __init__(self, path: Path | None = None):
        self.db = sqlite_utils.Database(str(path or checkpoints_path()))
        if TABLE not in self.db.table_names():
            self.db[TABLE].create(
                {"id": str, "op": str, "phase": str, "status": str, "request": str,
                 "session_dir": str, "created": str, "updated": str, "pid": int},
                pk="id",
            )
            self.db[TABLE].create_index(["updated"])

    def upsert(self, row: dict) -> None:
        self.db[TABLE].upsert(row, pk="id", alter=True)

    def get(self, session_id: str) -> dict | None:
        rows = list(self.db[TABLE].rows_where("id = ?", [session_id]))
        return rows[0] if rows else None

    def find(self, prefix: str) -> list[dict]:
        """Sessions whose id starts with `prefix` (users type short ids)."""
        return list(self.db[TABLE].rows_where("id LIKE ?", [prefix + "%"], limit=5))

    def recent(self, limit: int = 50) -> list[dict]:
        return list(self.db[TABLE].rows_where(order_by="updated desc", limit=limit))
