"""File safety for integration: hashes, atomic writes and the rule about where we may write.

Every file akg-op writes into a user's tree goes through `atomic_write`, after `check_writable`
has confirmed the path is inside one of the allowed roots and is not (and does not pass through)
a symlink that leads elsewhere.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from integration.errors import IntegrationError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str | None:
    """The file's sha256, or None when it does not exist."""
    try:
        return sha256_bytes(Path(path).read_bytes())
    except FileNotFoundError:
        return None


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def check_writable(path: str | os.PathLike, allowed_roots: list[str]) -> Path:
    """The absolute path if akg-op may write it; IntegrationError otherwise.

    Refused: a path that is a symlink, one whose real location is outside every allowed root
    (`..` tricks and symlinked folders included), and one whose folder we cannot write.
    """
    target = Path(os.path.abspath(path))
    if target.is_symlink():
        raise IntegrationError(f"refusing to write through a symlink: {target}")
    real_parent = os.path.realpath(target.parent)
    real_roots = [os.path.realpath(root) for root in allowed_roots]
    if not any(_inside(real_parent, root) for root in real_roots):
        raise IntegrationError(
            f"refusing to write {target}: outside the source folder, the work directory and --out"
        )
    if not os.path.isdir(real_parent):
        raise IntegrationError(f"cannot write {target}: folder {target.parent} does not exist")
    if read_only(real_parent) or (target.exists() and read_only(str(target))):
        raise IntegrationError(f"cannot write {target}: read-only destination")
    return target


def read_only(path: str) -> bool:
    """Not writable by us, or marked read-only (no write bit at all): a folder or file the user
    made read-only is respected even by a process that could override the permission bits."""
    return not os.access(path, os.W_OK) or not (os.stat(path).st_mode & 0o222)


def atomic_write(path: str | os.PathLike, data: bytes, mode_from: str | os.PathLike | None = None) -> None:
    """Write `data` to `path` through a temp file in the same folder and os.replace, so a reader
    sees the old bytes or the new ones, never a half-written file. Permission bits are copied
    from `mode_from` (usually the file being replaced)."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode_from is not None and os.path.exists(mode_from):
            os.chmod(tmp_name, stat.S_IMODE(os.stat(mode_from).st_mode))
        else:
            os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
