"""Phase 5: put an accepted kernel into the user's code, safely, and take it out again.

`integrate` plans every write first (paths checked, rewrite computed, destinations writable),
verifies the rewritten module in a worker from a staging copy inside the work directory, and
only then backs up what it will touch into `<session_workdir>/backup/` (with a manifest of
sha256 hashes) and writes atomically. `rollback` restores the originals byte for byte from that
manifest. Nothing is written outside the source's folder, the work directory and `out_dir`.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import libcst as cst
from pydantic import BaseModel

from integration.errors import IntegrationError, RollbackError
from integration.extract import ExtractedTask
from integration.files import atomic_write, check_writable, read_only, sha256_bytes, sha256_file
from integration.rewrite import integrated_source
from integration.worker import run_check

BACKUP_DIR = "backup"
MANIFEST = "manifest.json"
STAGING_DIR = "integration_check"


class FileChange(BaseModel):
    """One file akg-op touched (same fields as the session state's FileChange, plus a note)."""

    path: str
    action: str  # created | modified | restored | removed | unchanged
    before_hash: str | None = None
    after_hash: str | None = None
    backup_path: str | None = None
    note: str = ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- integrate ---------------------------------------------------------------------------------


def integrate(
    task: ExtractedTask | dict,
    session_workdir: str,
    *,
    source_path: str | None = None,
    generated_path: str | None = None,
    out_dir: str | None = None,
    in_place: bool = False,
    verify: bool = True,
    device: str = "cpu",
    timeout_s: float = 300,
) -> list[FileChange]:
    """Write `{op}_generated.py` and the integrated source (or rewrite the source in place).

    `generated_path` defaults to `<session_workdir>/{op}_generated.py`; the kernel is copied beside
    the source, or into `out_dir`, with `{model}_generated.py` next to it so its import resolves.
    Raises IntegrationError, with nothing written, when a path is unsafe, a destination is
    read-only, the kernel has no ModelNew, or the integrated target's outputs differ.
    """
    task = task if isinstance(task, ExtractedTask) else ExtractedTask.model_validate(task)
    workdir = Path(os.path.abspath(os.path.expanduser(session_workdir)))
    source = Path(os.path.abspath(source_path or task.source_path))
    generated = Path(os.path.abspath(generated_path or workdir / f"{task.op_name}_generated.py"))
    _check_inputs(task, workdir, source, generated, out_dir, in_place)

    dest_dir = source.parent if (in_place or out_dir is None) else Path(os.path.abspath(out_dir))
    roots = [str(source.parent), str(workdir)] + ([str(dest_dir)] if out_dir else [])
    kernel_module = f"{task.op_name}_generated"
    kernel_path = dest_dir / f"{kernel_module}.py"
    integrated_path = source if in_place else dest_dir / f"{source.stem}_generated.py"
    notes = []
    if integrated_path == kernel_path:  # model.py integrating op "model": keep both files
        integrated_path = dest_dir / f"{source.stem}_integrated.py"
        notes.append(f"{source.stem}_generated.py is the kernel's name, "
                     f"so the integrated source is {integrated_path.name}")

    # Decoded from bytes, not read_text: universal newlines would rewrite every \r\n in the file.
    rewrite = integrated_source(
        source.read_bytes().decode("utf-8"), task.target_name, task.target_kind, kernel_module)
    notes += rewrite.notes
    kernel_bytes = generated.read_bytes()
    # (destination, bytes, note for the report), the kernel first: the rewrite imports it.
    planned: list[tuple[Path, bytes, str]] = [
        (integrated_path, rewrite.code.encode("utf-8"), "; ".join(notes))]
    if kernel_path != generated:
        planned.insert(0, (kernel_path, kernel_bytes, ""))

    def check_destinations() -> None:
        for path, _, _ in planned:
            check_writable(path, roots)

    if dest_dir.is_dir():
        check_destinations()
    elif not dest_dir.parent.is_dir() or read_only(str(dest_dir.parent)):
        raise IntegrationError(
            f"cannot create the --out folder {dest_dir}: its parent is missing or read-only")

    if verify:
        _verify_in_staging(task, workdir, source, kernel_module, kernel_bytes, rewrite.code,
                           device, timeout_s)

    if not dest_dir.is_dir():
        dest_dir.mkdir()
        check_destinations()
    return _apply(planned, workdir, source)


def _check_inputs(task, workdir: Path, source: Path, generated: Path, out_dir, in_place: bool) -> None:
    if not task.op_name.isidentifier():
        raise IntegrationError(f"op name {task.op_name!r} is not a valid module name")
    if task.needs:
        raise IntegrationError("the task is incomplete (" + "; ".join(n.question for n in task.needs) + ")")
    if source.is_symlink():
        raise IntegrationError(f"refusing to rewrite through a symlink: {source}")
    if not source.is_file():
        raise IntegrationError(f"source file not found: {source}")
    if not generated.is_file():
        raise IntegrationError(f"accepted kernel not found: {generated}")
    if not workdir.is_dir():
        raise IntegrationError(f"session work directory not found: {workdir}")
    if read_only(str(workdir)):
        raise IntegrationError(f"the session work directory {workdir} is read-only: no place for backups")
    if out_dir is not None and Path(out_dir).is_symlink():
        raise IntegrationError(f"refusing to write through a symlink: {out_dir}")
    if in_place and out_dir is not None and os.path.realpath(out_dir) != os.path.realpath(source.parent):
        raise IntegrationError("--in-place rewrites the source where it is: it cannot be combined with --out")
    try:
        kernel = cst.parse_module(generated.read_text(encoding="utf-8"))
    except (cst.ParserSyntaxError, UnicodeDecodeError) as exc:
        raise IntegrationError(f"the accepted kernel {generated.name} does not parse: {exc}") from exc
    if not any(isinstance(s, cst.ClassDef) and s.name.value == "ModelNew" for s in kernel.body):
        raise IntegrationError(f"the accepted kernel {generated.name} defines no class ModelNew")


def _verify_in_staging(task, workdir: Path, source: Path, kernel_module: str, kernel_bytes: bytes,
                       integrated_code: str, device: str, timeout_s: float) -> None:
    """Import the integrated module from a copy in the work directory, in a worker, and compare
    its target with the original: nothing reaches the user's folders unless it matches."""
    call_shapes = traced_call_shapes(task, source, timeout_s)
    staging = workdir / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / f"{kernel_module}.py").write_bytes(kernel_bytes)
        staged = staging / f"{source.stem}_generated.py"
        staged.write_text(integrated_code, encoding="utf-8")
        result = run_check(
            "integration.checks:check_integrated",
            {"source_path": str(source), "integrated_path": str(staged),
             "target_name": task.target_name, "task_code": task.task_code, "call_shapes": call_shapes},
            device=device, timeout_s=timeout_s,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not result.ok:
        raise IntegrationError(
            f"the integrated {task.target_name} does not match the original ({result.message}); "
            "nothing was written"
        )


TRACE_TIMEOUT_S = 60.0  # a script that trains for hours is stopped; the calls seen so far count


def traced_call_shapes(task, source: Path, timeout_s: float) -> list:
    """The input shapes the user's file really calls the target with (its `__main__` block run in a
    worker, forward calls recorded); [] for function targets or when nothing could be traced."""
    if task.target_kind != "class":
        return []
    traced = run_check("integration.checks:trace_target_calls",
                       {"source_path": str(source), "target_name": task.target_name},
                       device="cpu", timeout_s=min(timeout_s, TRACE_TIMEOUT_S))
    return list((traced.value or {}).get("calls") or []) if traced.ok else []


def place_files(session_workdir: str, planned: list[tuple[Path, bytes, str]]) -> list[FileChange]:
    """Write files (e.g. the kernel copied to --out) under the session's backup manifest, so
    `rollback` restores or removes them like any integrated file."""
    workdir = Path(os.path.abspath(os.path.expanduser(session_workdir)))
    for path, _, _ in planned:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _apply([(Path(os.path.abspath(p)), data, note) for p, data, note in planned], workdir, None)


def _apply(planned: list[tuple[Path, bytes, str]], workdir: Path, source: Path | None) -> list[FileChange]:
    """Back up, record, then write. The manifest is saved before the first write, so a crash
    half-way still leaves everything rollback needs."""
    backup_dir = workdir / BACKUP_DIR
    backup_dir.mkdir(exist_ok=True)
    manifest = _load_manifest(workdir, missing_ok=True)
    if manifest is None or manifest.get("rolled_back_at"):
        manifest = {"created_at": _now(), "rolled_back_at": None, "entries": []}
    if source is not None and "source" not in manifest:
        # The source as it was, even when only new files are written beside it: the user's
        # reference copy of the code the kernel was extracted from.
        snapshot = backup_dir / f"source_{source.name}"
        atomic_write(snapshot, source.read_bytes(), mode_from=source)
        manifest["source"] = {"path": str(source), "sha256": sha256_file(source), "backup_path": str(snapshot)}
    entries = {e["path"]: e for e in manifest["entries"]}

    changes = []
    for path, data, note in planned:
        before = sha256_file(path)
        entry = entries.get(str(path))
        if entry is None:  # first time this session touches the file: keep its original
            backup_path = None
            if before is not None:
                backup = backup_dir / f"{len(entries) + 1:02d}_{path.name}"
                atomic_write(backup, path.read_bytes(), mode_from=path)
                backup_path = str(backup)
            entry = {"path": str(path), "action": "modified" if before else "created",
                     "before_hash": before, "backup_path": backup_path,
                     # where the folder really was: rollback refuses if it now leads elsewhere
                     "real_parent": os.path.realpath(path.parent)}
            manifest["entries"].append(entry)
            entries[str(path)] = entry
        entry.update(after_hash=sha256_bytes(data), integrated_at=_now())
        changes.append(FileChange(path=str(path), action="modified" if before else "created",
                                  before_hash=before, after_hash=entry["after_hash"],
                                  backup_path=entry["backup_path"], note=note))
    _save_manifest(workdir, manifest)
    for path, data, _ in planned:
        atomic_write(path, data, mode_from=path if path.exists() else None)
    return changes


# -- rollback ----------------------------------------------------------------------------------


def rollback(session_workdir: str, *, force: bool = False) -> list[FileChange]:
    """Restore every file integration touched to its original bytes (and remove the files it
    created), as recorded in `backup/manifest.json`.

    Refuses, changing nothing, when the backup is missing or damaged, or when a file was edited
    after the integration (unless `force`).
    """
    workdir = Path(os.path.abspath(os.path.expanduser(session_workdir)))
    manifest = _load_manifest(workdir, missing_ok=False)
    if manifest.get("rolled_back_at"):
        raise RollbackError(f"already rolled back at {manifest['rolled_back_at']}")

    plan = []
    for entry in reversed(manifest["entries"]):
        path = Path(entry["path"])
        if path.is_symlink():
            raise RollbackError(f"refusing to restore through a symlink: {path}")
        # A folder on the way replaced by a link since the integration (only the last component
        # was checked before): writing or deleting there would touch the link's target instead.
        expected_parent = entry.get("real_parent", str(path.parent))
        if os.path.realpath(path.parent) != expected_parent:
            raise RollbackError(
                f"refusing to restore {path}: its folder now leads to {os.path.realpath(path.parent)}, "
                f"not {expected_parent} as at integration; nothing was restored")
        current = sha256_file(path)
        if current == entry["before_hash"]:
            plan.append((entry, current, "unchanged"))
            continue
        if current != entry["after_hash"] and not force:
            raise RollbackError(
                f"{path} changed since the integration (sha256 {str(current)[:12]}, expected "
                f"{entry['after_hash'][:12]}); nothing was restored (use --force to overwrite it)"
            )
        if entry["backup_path"] is not None:
            backup = Path(entry["backup_path"])
            if sha256_file(backup) != entry["before_hash"]:
                raise RollbackError(f"backup {backup} is missing or damaged; nothing was restored")
        plan.append((entry, current, "restored" if entry["backup_path"] else "removed"))

    changes = []
    for entry, current, action in plan:
        path = Path(entry["path"])
        if action == "restored":
            mode_from = path if path.exists() else entry["backup_path"]
            atomic_write(path, Path(entry["backup_path"]).read_bytes(), mode_from=mode_from)
        elif action == "removed" and path.exists():
            path.unlink()
        changes.append(FileChange(path=str(path), action=action, before_hash=current,
                                  after_hash=sha256_file(path), backup_path=entry["backup_path"]))
    manifest["rolled_back_at"] = _now()
    _save_manifest(workdir, manifest)
    return changes


def _load_manifest(workdir: Path, missing_ok: bool) -> dict | None:
    path = workdir / BACKUP_DIR / MANIFEST
    if not path.exists():
        if missing_ok:
            return None
        raise RollbackError(f"no backup manifest at {path}: nothing was integrated in this session")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RollbackError(f"backup manifest {path} is unreadable: {exc}") from exc


def _save_manifest(workdir: Path, manifest: dict) -> None:
    atomic_write(workdir / BACKUP_DIR / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


# -- report ------------------------------------------------------------------------------------


def report_section(changes: list[FileChange | dict], session_id: str | None = None) -> str:
    """Markdown for report.md: every file change, and how to undo it."""
    changes = [c if isinstance(c, FileChange) else FileChange.model_validate(c) for c in changes]
    rolled_back = any(c.action in ("restored", "removed") for c in changes)
    title = "## Rollback" if rolled_back else "## File changes"
    if not changes:
        return f"{title}\n\nNo files were changed.\n"

    def short(digest: str | None) -> str:
        return f"`{digest[:12]}`" if digest else "—"

    lines = [title, "", "| File | Action | sha256 before | sha256 after | Backup |", "|---|---|---|---|---|"]
    for c in changes:
        backup = f"`{c.backup_path}`" if c.backup_path else "—"
        lines.append(f"| `{c.path}` | {c.action} | {short(c.before_hash)} | {short(c.after_hash)} | {backup} |")
    notes = sorted({c.note for c in changes if c.note})
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    lines.append("")
    if rolled_back:
        lines.append("The original files were restored byte for byte from `backup/`; "
                     "files akg-op created were removed.")
    else:
        command = f"akg-op rollback {session_id or 'ID'}"
        lines.append(
            f"To undo: `{command}` restores every modified file byte for byte from `backup/` "
            "(hashes in `backup/manifest.json`) and removes the files akg-op created."
        )
    return "\n".join(lines) + "\n"
