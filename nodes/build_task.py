"""Phase 2: write the KernelBench task `{op}.py`, validate it in a worker, ask to confirm it."""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

from langchain_core.runnables import RunnableConfig

import harness
from session_state import SessionState, log
from integration.errors import IntegrationPackageError
from integration.extract import ExtractedTask, extract_task
from integration.verification import check_extraction
from nodes import questions
from nodes.catalogue import parse_request, task_source
from nodes.context import generator_for
from nodes.errors import UserError
from nodes.task_files import check_task_source, op_name_from, read_task_file


def _task_from_request(state: SessionState, config: RunnableConfig) -> tuple[str, str]:
    settings = state.settings
    try:
        parsed = parse_request(settings.request, shapes=settings.shapes, dtype=settings.dtype)
        return parsed.op, task_source(parsed)
    except UserError:
        if settings.llm == "embedded":
            raise
    # The catalogue does not know this request: the model writes the task (validated below).
    proposal = generator_for(state, config).build_task(settings.request)
    if not proposal.ok:
        raise UserError(f"the model could not write a task for this request: {proposal.error}")
    return _op_name_of_request(settings.request), proposal.code


FILLER = {"generate", "write", "implement", "optimize", "create", "make", "build", "please", "a", "an",
          "the", "kernel", "op", "operator", "for", "with", "on", "of", "in", "input", "triton", "fast"}


def _op_name_of_request(request: str) -> str:
    """'Generate a quick_gelu kernel for (8, 16)' → 'quick_gelu' (the first word that names something)."""
    import re

    words = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9_]*", request) if w.lower() not in FILLER]
    return op_name_from(words[0]) if words else "op"


def _session_dir(state: SessionState, op: str) -> Path:
    root = Path(state.settings.workdir).expanduser()
    suffix = state.session_id[:6] or secrets.token_hex(3)
    # A process killed after creating the folder but before the step was saved (kill -9 during
    # build_task) left it behind: the resumed step takes it over instead of orphaning it.
    if state.session_id:
        earlier = sorted(p for p in root.glob(f"op_{op}_*_{suffix}") if p.is_dir() and not p.is_symlink())
        if earlier:
            return earlier[-1]
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    path = root / f"op_{op}_{stamp}_{suffix}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _extract_from_source(state: SessionState) -> ExtractedTask:
    settings = state.settings
    try:
        return extract_task(settings.source_file, settings.request, target=settings.target,
                            shapes=settings.shapes, dtype=settings.dtype, init_args=settings.init_args)
    except IntegrationPackageError as exc:
        raise UserError(str(exc)) from None


def build_task(state: SessionState, config: RunnableConfig) -> dict:
    if state.fusion is not None:  # fusion mode: the task is the picked region
        from nodes.fusion import build_fused_task

        return build_fused_task(state)
    settings = state.settings
    extracted = None
    if settings.task_file:
        source = read_task_file(settings.task_file)
        check_task_source(source, settings.task_file)
        op = op_name_from(settings.task_file)
        origin = f"copied from {settings.task_file}"
    elif settings.source_file:
        extracted = _extract_from_source(state)
        if extracted.needs:  # confirm_task asks for what the file does not determine
            return {"op_name": extracted.op_name, "target_name": extracted.target_name, "task_path": None,
                    "phase": "build_task", "pending": questions.task_needs(extracted.needs, extracted.notes),
                    "history": log(state, f"build_task: {extracted.target_name} needs "
                                          + ", ".join(n.kind for n in extracted.needs))}
        op, source = extracted.op_name, extracted.task_code
        origin = f"extracted {extracted.target_kind} {extracted.target_name} from {settings.source_file}"
    else:
        op, source = _task_from_request(state, config)
        check_task_source(source, f"{op}.py")
        origin = "written from the request"
    # A session resumed after a failure here reuses its directory.
    directory = Path(state.session_dir) if state.session_dir else _session_dir(state, op)
    task_path = directory / f"{op}.py"
    task_path.write_text(source)
    device = state.env.verify_device if state.env else "cpu"
    check = harness.validate_task(str(task_path), device=device).to_dict()
    if not check.get("ok"):
        # One line per problem: a worker's log tail belongs in the session history, not the error.
        problems = "; ".join(p.strip().splitlines()[0] for p in check.get("problems") or ["unknown problem"]
                             if p.strip())
        raise UserError(f"task {task_path} failed validation: {problems}")
    if extracted is not None:
        same = check_extraction(extracted, device=device)
        if not same.ok:
            raise UserError(f"the extracted task does not reproduce {extracted.target_name}: {same.message}")
    notes = extracted.notes if extracted is not None else []
    return {
        "op_name": op, "session_dir": str(directory), "task_path": str(task_path), "task_check": check,
        "extracted": extracted.model_dump() if extracted is not None else None,
        "target_name": extracted.target_name if extracted is not None else None,
        "phase": "build_task", "pending": questions.confirm_task(str(task_path), check, notes),
        "history": log(state, f"build_task: {task_path.name} {origin}, validated"),
    }
