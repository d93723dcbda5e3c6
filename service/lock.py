"""One process drives a session at a time: a lock per session under `$AKG_OP_HOME/locks/`.

POSIX record locks (fcntl.lockf) belong to the process that took them: the kernel drops them when
that process dies, however it dies, so a killed CLI or server never leaves a session blocked, and
harness workers forked meanwhile do not inherit them. They do not exclude threads of one process
from each other, so the HTTP server's concurrent requests also meet in a per-process table.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from checkpoints.home import akg_home
from nodes.errors import UserError


class SessionBusy(UserError):
    """Another process (or request) is running this session's steps right now."""


_held: dict[str, list[int]] = {}  # session → [holding thread, depth]: re-entrant within that thread
_held_guard = threading.Lock()


def lock_path(session_id: str) -> Path:
    locks = akg_home() / "locks"
    locks.mkdir(exist_ok=True)
    return locks / f"{session_id}.lock"


def busy_error(session_id: str, pid: int | str) -> SessionBusy:
    return SessionBusy(f"session busy (held by pid {pid}): another process or request is running session "
                       f"{session_id}; wait for it, or follow it with akg-op status {session_id}")


def holder(session_id: str) -> int | None:
    """The pid of another driver of the session (another process, or another thread of this one),
    or None. The calling thread's own hold does not count."""
    with _held_guard:  # held throughout, so no thread of ours takes the lock while we probe
        if session_id in _held:
            # Never probe the file while this process holds it: closing any descriptor of a lock
            # file drops the process's POSIX lock.
            return None if _held[session_id][0] == threading.get_ident() else os.getpid()
        path = lock_path(session_id)
        if not path.exists():
            return None
        with open(path, "r+") as fh:
            try:
                fcntl.lockf(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return _pid_in(path)
            return None  # closing the file releases the probe


def _pid_in(path: Path) -> int | str:
    text = path.read_text().strip()
    return int(text) if text.isdigit() else "unknown"


@contextlib.contextmanager
def session_lock(session_id: str) -> Iterator[None]:
    """Hold the session for the duration of the block; SessionBusy at once when another process or
    thread holds it. The thread holding it may take it again (a worker holds it around its steps)."""
    me = threading.get_ident()
    with _held_guard:
        if session_id in _held:
            if _held[session_id][0] != me:
                raise busy_error(session_id, os.getpid())
            _held[session_id][1] += 1
            nested = True
        else:
            _held[session_id] = [me, 1]
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[session_id][1] -= 1
        return
    fh = None
    try:
        fh = open(lock_path(session_id), "a+")
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise busy_error(session_id, _pid_in(lock_path(session_id))) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        if fh is not None:
            fh.close()  # releases the lock
        with _held_guard:
            _held.pop(session_id, None)
