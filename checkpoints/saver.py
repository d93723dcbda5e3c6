"""The persistent LangGraph checkpointer: one SQLite file shared by every akg-op process."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from checkpoints.home import checkpoints_path


def open_saver(state_models: tuple[type, ...], path: Path | None = None) -> SqliteSaver:
    """A SqliteSaver that may deserialise exactly our state models (and nothing else custom).

    `check_same_thread=False` because LangGraph may call the saver from its worker threads; WAL
    lets `akg-op sessions` read while another process is writing.
    """
    conn = sqlite3.connect(str(path or checkpoints_path()), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    allowed = [(m.__module__, m.__name__) for m in state_models]
    saver = SqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=allowed))
    saver.setup()
    return saver
