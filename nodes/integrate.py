"""Phase 5: put the accepted kernel where the user wants it; every file written is first backed
up under the session's manifest, so `akg-op rollback` restores the originals byte for byte."""
from __future__ import annotations

from pathlib import Path

from session_state import FileChange, SessionState, log
from integration.errors import IntegrationPackageError
from integration.integrate import integrate as integrate_source
from integration.integrate import place_files
from nodes.errors import UserError


def integrate(state: SessionState) -> dict:
    if state.fusion is not None:  # fusion mode: the model is integrated after the loop
        from nodes.fusion import keep_kernel

        return keep_kernel(state)
    session_dir = Path(state.session_dir)
    kernel_name = f"{state.op_name}_generated.py"
    kernel = Path(state.accepted_code_path).read_bytes()
    settings = state.settings
    try:
        planned = [(session_dir / kernel_name, kernel, "the accepted kernel")]
        if not settings.source_file and settings.out_dir and Path(settings.out_dir).resolve() != session_dir.resolve():
            planned.append((Path(settings.out_dir) / kernel_name, kernel, "copied to --out"))
        changes = place_files(str(session_dir), planned)
        if settings.source_file:
            device = state.env.verify_device if state.env else "cpu"
            changes += integrate_source(state.extracted, str(session_dir), out_dir=settings.out_dir,
                                        in_place=settings.in_place, device=device)
    except IntegrationPackageError as exc:
        raise UserError(str(exc)) from None
    records = [FileChange(**c.model_dump(exclude={"note"})) for c in changes]
    # The file the user imports: the integrated source if there is one, else the kernel's copy.
    user_facing = records[-1].path
    return {"changes": [*state.changes, *records], "kernel_path": user_facing, "phase": "integrate",
            "history": log(state, "integrate: " + ", ".join(f"{c.action} {c.path}" for c in records))}
