"""The paths a user names on the command line (--source, --out), checked before anything runs.

Symlinks are judged on the path as the user wrote it, before anything resolves it: resolving
first would turn `link.py` into its target and the "refusing to rewrite through a symlink" check
could never fire. Policy: a --source or --out that is itself a symlink is refused, with the link
and its target named, so nothing is ever written or deleted anywhere the user did not name. Folders
above them may be links (a home directory on another disk is normal); writes there are checked
again at integration time (integration.files.check_writable).
"""
from __future__ import annotations

import os
from pathlib import Path

from nodes.errors import UserError


def _absolute(path: str | os.PathLike) -> Path:
    """Absolute, `~` expanded, `..` folded, links NOT followed."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def _link_note(path: Path) -> str:
    return f"{path} is a symlink to {os.path.realpath(path)}"


def checked_source(source: str | os.PathLike, in_place: bool) -> str:
    """The --source path to store (absolute, not resolved); UserError for a link or a non-file."""
    path = _absolute(source)
    if path.is_symlink():
        verb = "rewrite (--in-place)" if in_place else "integrate"
        raise UserError(f"refusing to {verb} through a symlink: {_link_note(path)}; pass the target file itself")
    if not path.is_file():
        raise UserError(f"source file {source} does not exist: check --source")
    return str(path)


def checked_out_dir(out_dir: str | os.PathLike) -> str:
    """The --out folder to store; UserError when it is a link, an existing file or has no parent."""
    path = _absolute(out_dir)
    if path.is_symlink():
        raise UserError(f"refusing to write through a symlink: --out {_link_note(path)}; pass a real folder")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out_dir} is an existing file, not a folder: pass a folder for the kernel")
    if not path.exists() and not path.parent.is_dir():
        raise UserError(f"--out {out_dir}: its parent folder {path.parent} does not exist")
    return str(path)

