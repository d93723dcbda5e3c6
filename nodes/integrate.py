"""Phase 5: put the accepted kernel where the user wants it, backing up whatever it replaces."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from graph.state import FileChange, SessionState, log


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_copy(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def place_file(src: Path, dest: Path, backup_dir: Path) -> FileChange:
    """Copy src to dest; an existing dest is first backed up (so `rollback` can restore it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    before = backup = None
    if dest.exists():
        before = sha256(dest)
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / dest.name
        shutil.copy2(dest, backup)
    _atomic_copy(src, dest)
    return FileChange(path=str(dest), action="modified" if before else "created", before_hash=before,
                      after_hash=sha256(dest), backup_path=str(backup) if backup else None)


def integrate(state: SessionState) -> dict:
    session_dir = Path(state.session_dir)
    accepted = Path(state.accepted_code_path)
    name = f"{state.op_name}_generated.py"
    changes = [place_file(accepted, session_dir / name, session_dir / "backup")]
    if state.settings.source_file:
        from integration.integrate import integrate_source

        changes.extend(FileChange(**c) for c in integrate_source(state))
    else:
        out_dir = Path(state.settings.out_dir or ".").expanduser()
        if out_dir.resolve() != session_dir.resolve():
            changes.append(place_file(accepted, out_dir / name, session_dir / "backup"))
    return {"changes": [*state.changes, *changes], "kernel_path": changes[-1].path if not state.settings.source_file
            else changes[0].path, "phase": "integrate",
            "history": log(state, "integrate: " + ", ".join(f"{c.action} {c.path}" for c in changes))}
