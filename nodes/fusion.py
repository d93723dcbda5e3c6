"""Fusion mode's phases: analyse the model (Phase 1), ask which opportunities to realize, walk
them one by one through the normal phases (the loop is in the graph), integrate the realized
kernels into the model, report.

Per opportunity, `session_dir` points at `fusions/{op}/` so the normal nodes write the task, the
runs and the kernel there; `fusion.root_dir` is the session's own directory.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

import harness
from fusion.analysis import Analysis, markdown, table
from fusion.request import DEFAULT_PICK
from session_state import FileChange, FusionResult, FusionState, Pending, SessionState, log
from nodes import questions
from nodes.answers import interpret
from nodes.errors import UserError


def _root_dir(state: SessionState, model: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    root = Path(state.settings.workdir).expanduser()
    path = root / f"op_{model}_fusion_{stamp}_{state.session_id[:6] or secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def analysis_spec(state: SessionState) -> dict:
    """What the worker builds: a Hugging Face architecture or the user's model file."""
    from fusion import models
    from nodes.catalogue import DTYPES

    settings = state.settings
    on_gpu = state.env is not None and state.env.device_kind == "cuda"
    dtype = DTYPES.get((settings.dtype or "").lower(), settings.dtype) if settings.dtype else None
    arch_params = state.params.arch if state.params else "cpu"
    if settings.source_file:
        if not settings.shapes:
            raise UserError("fusion analysis of a model file needs its input shapes: pass --shapes, e.g. '(2, 16, 64)'")
        return {"kind": "file", "source_file": settings.source_file, "target": settings.target,
                "shapes": settings.shapes, "dtype": dtype or "float32", "init_args": settings.init_args,
                "arch_params": arch_params}
    arch = models.require_architecture(settings.request)
    # Realistic on a GPU; in the CPU interpreter (no bf16 arithmetic worth verifying) float32.
    return {"kind": "hf", "arch": arch, "shapes": settings.shapes, "dtype": dtype or ("bfloat16" if on_gpu else "float32"),
            "layers": 1, "arch_params": arch_params}


def fusion_analysis(state: SessionState) -> dict:
    from integration.worker import run_check

    spec = analysis_spec(state)
    model = spec.get("arch") or Path(spec["source_file"]).stem
    result = run_check("fusion.analysis:analyse", {"spec": spec}, device="cpu", timeout_s=600)
    if not result.ok:
        raise UserError(f"fusion analysis of {model} failed: {result.message}")
    analysis = Analysis.model_validate(result.value["analysis"])
    root = _root_dir(state, analysis.model)
    (root / "fusion_analysis.json").write_text(analysis.model_dump_json(indent=2))
    (root / "fusion_analysis.md").write_text(markdown(analysis))
    fusion = FusionState(root_dir=str(root), analysis_path=str(root / "fusion_analysis.json"),
                         model=analysis.model, kind=analysis.kind)
    found = len(analysis.opportunities)
    note = f" (capture stopped early: {analysis.capture_error})" if analysis.capture_error else ""
    return {"fusion": fusion, "session_dir": str(root), "op_name": f"{analysis.model}_fusion",
            "phase": "fusion_analysis", "pending": pick_question(analysis),
            "history": log(state, f"fusion_analysis: {found} opportunities in {analysis.model}{note}")}


def load_analysis(state: SessionState) -> Analysis:
    return Analysis.model_validate_json(Path(state.fusion.analysis_path).read_text())


def pick_question(analysis: Analysis) -> Pending:
    count = len(analysis.opportunities)
    stopped = f"\nCapture stopped early: {analysis.capture_error}" if analysis.capture_error else ""
    return Pending(gate="pick_fusion",
                   question=f"{count} fusion opportunities found in {analysis.model}. Which should be realized?"
                            + stopped,
                   options=[*(str(o.rank) for o in analysis.opportunities), "all", "top 2", "none"],
                   default=DEFAULT_PICK if count else "none", detail=table(analysis), detail_kind="markdown")


def pick_fusion(state: SessionState) -> dict:
    """Gate: the ranks to realize, in the order given."""
    ranks = interpret(state.pending, state.answer)["ranks"]
    analysis = load_analysis(state)
    by_rank = {o.rank: o for o in analysis.opportunities}
    picked = [by_rank[r].name for r in ranks]
    fusion = state.fusion.model_copy(update={
        "picked": picked, "position": -1,
        "results": [FusionResult(name=by_rank[r].name, rank=r) for r in ranks]})
    return {"fusion": fusion, "pending": None, "answer": None, "phase": "pick_fusion",
            "history": log(state, f"pick_fusion: {', '.join(picked) or 'none'}")}


def next_fusion(state: SessionState) -> dict:
    """Close the opportunity just worked on (realized or failed) and set up the next one."""
    fusion = state.fusion.model_copy(deep=True)
    updates: dict = {}
    if 0 <= fusion.position < len(fusion.results):
        result = fusion.results[fusion.position]
        result.runs = list(state.runs)
        if result.status == "pending":
            if state.kernel_path:
                result.status, result.kernel_path = "realized", state.kernel_path
            else:
                failed = next((r for r in reversed(state.runs) if r.status == "failed"), None)
                result.status = "failed"
                result.error = (failed.error if failed else None) or "no kernel accepted"
        result.task_path = result.task_path or state.task_path
    fusion.position += 1
    if fusion.position < len(fusion.picked):
        name = fusion.picked[fusion.position]
        directory = Path(fusion.root_dir) / "fusions" / name
        directory.mkdir(parents=True, exist_ok=True)
        updates.update(op_name=name, session_dir=str(directory), task_path=None, task_check=None, runs=[],
                       workflow=None, accepted_code_path=None, kernel_path=None, pending=None, answer=None)
        line = f"next_fusion: {fusion.position + 1}/{len(fusion.picked)} {name}"
    else:
        updates.update(op_name=f"{fusion.model}_fusion", session_dir=fusion.root_dir, pending=None)
        line = "next_fusion: every picked opportunity done"
    return {**updates, "fusion": fusion, "phase": "next_fusion", "history": log(state, line)}


def current(state: SessionState) -> FusionResult | None:
    fusion = state.fusion
    if fusion is None or not 0 <= fusion.position < len(fusion.results):
        return None
    return fusion.results[fusion.position]


def build_fused_task(state: SessionState) -> dict:
    """build_task in fusion mode: the task is the region, written at analysis; a task that does
    not validate fails this opportunity only."""
    fusion = state.fusion.model_copy(deep=True)
    result = fusion.results[fusion.position]
    opportunity = next(o for o in load_analysis(state).opportunities if o.name == result.name)
    task_path = Path(state.session_dir) / f"{result.name}.py"
    task_path.write_text(opportunity.task_code)
    result.task_path = str(task_path)
    device = state.env.verify_device if state.env else "cpu"
    check = harness.validate_task(str(task_path), device=device).to_dict()
    if not check.get("ok"):
        problems = "; ".join(p.strip().splitlines()[0] for p in check.get("problems") or ["unknown problem"] if p.strip())
        result.status, result.error = "failed", f"task failed validation: {problems}"
        return {"fusion": fusion, "task_path": str(task_path), "phase": "build_task",
                "history": log(state, f"build_task: {task_path.name} failed validation: {problems}")}
    return {"fusion": fusion, "op_name": result.name, "task_path": str(task_path), "task_check": check,
            "phase": "build_task", "pending": questions.confirm_task(str(task_path), check,
                                                                       [f"fusion opportunity {result.rank}: "
                                                                        f"{opportunity.label}"]),
            "history": log(state, f"build_task: {task_path.name} (fusion opportunity {result.rank}), validated")}


def skip_current(state: SessionState) -> dict:
    """`no` at confirm_task in fusion mode: this opportunity is dropped, the others go on."""
    fusion = state.fusion.model_copy(deep=True)
    result = fusion.results[fusion.position]
    result.status, result.error = "failed", "skipped: the task was not confirmed"
    return {"fusion": fusion, "pending": None, "answer": None, "phase": "confirm_task",
            "history": log(state, f"confirm_task: skipped {result.name}")}


def keep_kernel(state: SessionState) -> dict:
    """integrate in fusion mode: the accepted kernel goes to fusions/{op}/{op}_generated.py; the
    model is integrated once, after the loop, with every realized kernel."""
    target = Path(state.session_dir) / f"{state.op_name}_generated.py"
    target.write_bytes(Path(state.accepted_code_path).read_bytes())
    return {"kernel_path": str(target), "phase": "integrate",
            "history": log(state, f"integrate: kept {target}")}


def integrate_model(state: SessionState) -> dict:
    """Put every realized kernel into the model and check the whole model computes the same."""
    from fusion.integrate import integrate_file_model, write_fused_module
    from integration.errors import IntegrationPackageError

    fusion = state.fusion.model_copy(deep=True)
    analysis = load_analysis(state)
    realized = {r.name: r.kernel_path for r in fusion.results if r.status == "realized"}
    if not realized:
        fusion.model_check = {"ok": False, "message": "no kernel was realized: the model is unchanged"}
        return {"fusion": fusion, "phase": "integrate_model",
                "history": log(state, "integrate_model: nothing realized")}
    device = state.env.verify_device if state.env else "cpu"
    changes: list[FileChange] = []
    try:
        if fusion.kind == "hf":
            check, path = write_fused_module(analysis, realized, fusion.root_dir, device=device)
        else:
            check, written = integrate_file_model(analysis, realized, fusion.root_dir,
                                                  in_place=state.settings.in_place,
                                                  out_dir=state.settings.out_dir, device=device)
            changes = [FileChange(**c.model_dump(exclude={"note"})) for c in written]
            path = changes[-1].path if changes else None
    except IntegrationPackageError as exc:
        check, path = {"ok": False, "message": str(exc)}, None
    fusion.model_check = check
    line = f"integrate_model: {check.get('message', '')}" + (f"; wrote {path}" if path else "")
    return {"fusion": fusion, "changes": [*state.changes, *changes], "kernel_path": path,
            "phase": "integrate_model", "history": log(state, line)}


def fusion_report(state: SessionState) -> dict:
    from fusion.report import render_fusion_report

    fusion = state.fusion
    path = Path(fusion.root_dir) / "report.md"
    analysis = load_analysis(state)
    path.write_text(render_fusion_report(state, analysis))
    realized = [r for r in fusion.results if r.status == "realized"]
    model_ok = bool((fusion.model_check or {}).get("ok"))
    status = "done" if realized and model_ok or (not fusion.picked) else "failed"
    return {"report_path": str(path), "status": status, "phase": "report", "pending": None,
            "session_dir": fusion.root_dir, "history": log(state, f"report: {path}")}

