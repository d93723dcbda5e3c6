"""akg-op command line: start, answer, resume and inspect kernel-generation sessions.

A thin layer over graph.sessions: it parses flags, checks input before any session exists, shows
progress and questions, and turns every error into one line with a non-zero exit code.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.syntax import Syntax
from rich.table import Table

from nodes.errors import InvalidAnswer, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Generate, verify, benchmark and integrate Triton kernels.")
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    one_line = " ".join(message.split())  # errors are one line, whatever the message carried
    err.print(f"[bold red]error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _internal_error(exc: Exception, session_id: str | None) -> None:
    from checkpoints.home import akg_home

    log = akg_home() / "errors.log"
    with log.open("a") as fh:
        fh.write(traceback.format_exc() + "\n")
    hint = f"; the session is resumable: akg-op resume {session_id}" if session_id else ""
    _fail(f"{type(exc).__name__}: {exc} (details in {log}){hint}", 1)


# ---------------------------------------------------------------- display


def _on_event(kind: str, payload: dict) -> None:
    if kind == "step":
        node = payload["node"]
        if node in ("prepare", "generate", "fix", "verify", "round", "finish", "__interrupt__"):
            return  # the custom events below say more about the loop
        out.print(f"[green]✓[/] {node}")
        return
    event = payload.get("kind")
    if event == "attempt":
        note = "" if payload.get("ok") else f" — no code: {payload.get('error')}"
        out.print(f"  [cyan]●[/] iteration {payload['iteration']}: {payload['action']}{note}", highlight=False)
    elif event == "verdict":
        colour = "green" if payload["status"] == "accepted" else "yellow"
        first = (payload.get("summary") or "").splitlines()[0:1]
        out.print(f"    verdict [{colour}]{payload['status']}[/] {first[0] if first else ''}", highlight=False)
    elif event == "tokens":
        out.print(f"    … {payload['tokens']} tokens", end="\r", highlight=False)
    elif event == "progress":
        out.print(f"  ● {payload.get('text', '')}", highlight=False, markup=False)


def _show_pending(session_id: str, state) -> None:
    pending = state.pending
    if pending.detail:
        body = (Syntax(pending.detail, "python", line_numbers=False, word_wrap=True)
                if pending.detail_kind == "python" else pending.detail)
        out.print(Panel(body, title=pending.gate, expand=False))
    out.print(f"[bold]{pending.question}[/]", highlight=False)
    out.print(f"options: {', '.join(pending.options)} (default: {pending.default})", highlight=False)


def _finish_message(state) -> int:
    if state.status == "cancelled":
        out.print(f"session {state.session_id} cancelled")
        return 0
    if state.report_path:
        verb = "done" if state.status == "done" else "failed"
        out.print(f"[bold]{verb}[/]: report at {state.report_path}", highlight=False)
        if state.kernel_path:
            out.print(f"kernel: {state.kernel_path}", highlight=False)
        return 0 if state.status == "done" else 1
    return 0


def _drive(sessions, session_id: str, *, settings=None, answer: str | None = None,
           auto_approve: bool = False) -> int:
    """Advance the session; at each gate ask in a terminal, or print the question and stop."""
    while True:
        try:
            state = sessions.advance(session_id, settings=settings, answer=answer,
                                     auto_approve=auto_approve, on_event=_on_event)
        except InvalidAnswer as exc:
            err.print(f"[yellow]{escape(str(exc))}[/]", highlight=False)  # nothing changed: ask again
            state = sessions.state(session_id)
        except UserError as exc:
            _fail(f"{exc} (session {session_id} is kept: fix this and run akg-op resume {session_id})", 2)
        except KeyboardInterrupt:
            _fail(f"interrupted; resume with: akg-op resume {session_id}", 130)
        except Exception as exc:  # a bug of ours: one line here, the traceback in the log
            _internal_error(exc, session_id)
        settings = None
        if sessions.waiting_at(session_id) is None:
            return _finish_message(state)
        if not sys.stdin.isatty():
            _show_pending(session_id, state)
            out.print(f"answer with: akg-op resume {session_id} --answer <answer>", highlight=False)
            return 0
        answer = _ask(session_id, state)


def _ask(session_id: str, state) -> str:
    _show_pending(session_id, state)
    return Prompt.ask("answer", default=state.pending.default)


# ---------------------------------------------------------------- settings


def _parse_shapes(text: Optional[str]) -> Optional[list[list[int]]]:
    if not text:
        return None
    from nodes.catalogue import parse_shapes_text

    return [list(s) for s in parse_shapes_text(text)]


def _parse_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option '{item}' is not key=value")
        options[key.strip()] = value.strip()
    return options


def _resolve_llm(llm: Optional[str], model: Optional[str], **options):
    """Flags, then AKG_OP_LLM/AKG_OP_MODEL/OPENAI_BASE_URL; the key stays in the environment."""
    from generators.llm_config import LLMSettings

    try:
        return LLMSettings.resolve(llm=llm, model=model, **options)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise UserError(str(exc).splitlines()[0]) from None


def _check_before_start(settings) -> None:
    """Everything we can check without running anything, so bad input creates no session."""
    from fusion.models import require_architecture
    from fusion.request import is_fusion_request
    from graph.state import EnvInfo
    from nodes.catalogue import find_arch, parse_request
    from nodes.env_probe import cached_detect
    from nodes.params import propose_params
    from nodes.task_files import check_task_source, read_task_file
    from nodes.workflows import available_workflows

    if settings.task_file:
        check_task_source(read_task_file(settings.task_file), settings.task_file)
    elif settings.source_file:
        if not Path(settings.source_file).is_file():
            raise UserError(f"source file {settings.source_file} does not exist: check --source")
    elif is_fusion_request(settings.request):  # fusion mode on a Hugging Face architecture
        require_architecture(settings.request)
    elif settings.llm == "embedded":
        parse_request(settings.request, shapes=settings.shapes, dtype=settings.dtype)
    if settings.source_file and is_fusion_request(settings.request) and not settings.shapes:
        raise UserError("fusion analysis of a model file needs its input shapes: pass --shapes, e.g. '(2, 16)'")
    if settings.workflow and settings.workflow not in available_workflows():
        raise UserError(f"unknown workflow '{settings.workflow}': choose one of {', '.join(available_workflows())}")
    if settings.search_options:
        _check_search_options(settings)
    env, _ = cached_detect()
    propose_params(EnvInfo(**env), find_arch(settings.request), settings.overrides)


def _check_search_options(settings) -> None:
    """--option pairs must suit the chosen search workflow (or, with none chosen, one of them)."""
    import search

    pairs = [f"{k}={v}" for k, v in settings.search_options.items()]
    workflows = [settings.workflow] if settings.workflow in ("adaptive_search", "evolve") else ["adaptive_search", "evolve"]
    errors = []
    for workflow in workflows:
        try:
            search.parse_options(workflow, pairs)
            return
        except search.OptionError as exc:
            errors.append(str(exc))
    raise UserError(errors[0])


# ---------------------------------------------------------------- commands


@app.command()
def run(
    request: str = typer.Argument("", help='What to build, e.g. "relu kernel, input (128, 4096), fp32".'),
    task: Optional[Path] = typer.Option(None, "--task", help="An existing KernelBench task file."),
    source: Optional[Path] = typer.Option(None, "--source", help="A source file holding the operator to optimize."),
    target: Optional[str] = typer.Option(None, "--target", help="The class or function in --source."),
    shapes: Optional[str] = typer.Option(None, "--shapes", help="Input shapes, e.g. '(128, 4096)'."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, fp16 or bf16."),
    workflow: Optional[str] = typer.Option(None, "--workflow", help="Default workflow (kernelgen)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take every gate's default; no questions."),
    workdir: str = typer.Option("~/akg_agents_logs", "--workdir", help="Where session directories go."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where to copy {op}_generated.py (default: here)."),
    in_place: bool = typer.Option(False, "--in-place", help="Rewrite --source itself (after a backup)."),
    framework: Optional[str] = typer.Option(None, "--framework"),
    backend: Optional[str] = typer.Option(None, "--backend"),
    arch: Optional[str] = typer.Option(None, "--arch"),
    dsl: Optional[str] = typer.Option(None, "--dsl"),
    max_iterations: int = typer.Option(10, "--max-iterations", min=1, max=100),
    llm: Optional[str] = typer.Option(None, "--llm", help="embedded or openai (default: openai when OPENAI_* is set)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name for --llm openai."),
    llm_timeout: Optional[float] = typer.Option(None, "--llm-timeout", help="Seconds per model request."),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens"),
    option: list[str] = typer.Option([], "--option", help="Search workflow option key=value (repeatable)."),
    background: bool = typer.Option(False, "--background", help="Detach: run in a worker process, return at once."),
) -> None:
    """Start a session: runs to the first question (or to the end with --yes)."""
    from graph.sessions import Sessions
    from graph.state import Settings

    try:
        if not request and not task and not source:
            raise UserError('say what to build, e.g. akg-op run "relu kernel, input (128, 4096), fp32", or pass --task FILE')
        overrides = {k: v for k, v in dict(framework=framework, backend=backend, arch=arch, dsl=dsl).items() if v}
        llm_settings = _resolve_llm(llm, model, timeout_s=llm_timeout, temperature=temperature,
                                    max_tokens=max_tokens)
        settings = Settings(
            request=request, task_file=str(task.expanduser().resolve()) if task else None,
            source_file=str(source.expanduser().resolve()) if source else None, target=target,
            shapes=_parse_shapes(shapes), dtype=dtype, workflow=workflow,
            workdir=str(Path(workdir).expanduser().resolve()),
            # Without --out: a kernel goes to the current directory, an integration beside --source.
            out_dir=str(out_dir.expanduser().resolve()) if out_dir else (None if source else str(Path.cwd())),
            in_place=in_place,
            max_iterations=max_iterations, llm=llm_settings.provider, model=llm_settings.model,
            llm_base_url=llm_settings.base_url, llm_timeout_s=llm_settings.timeout_s,
            temperature=llm_settings.temperature, max_tokens=llm_settings.max_tokens, overrides=overrides,
            search_options=_parse_options(option), auto_approve=yes,
        )
        _check_before_start(settings)
    except UserError as exc:
        _fail(str(exc))
    sessions = Sessions()
    session_id = sessions.create(settings)
    out.print(f"session [bold]{session_id}[/]", highlight=False)
    if background:
        raise typer.Exit(_detach(session_id, settings=settings))
    raise typer.Exit(_drive(sessions, session_id, settings=settings, auto_approve=yes))


@app.command()
def resume(
    session_id: str = typer.Argument(..., help="The session id (or a unique prefix)."),
    answer: Optional[str] = typer.Option(None, "--answer", "-a", help="The answer to the pending question."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take every remaining gate's default."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Switch the generator: embedded or openai."),
    model: Optional[str] = typer.Option(None, "--model", help="Switch the model (with --llm openai)."),
    background: bool = typer.Option(False, "--background", help="Detach: continue in a worker process."),
) -> None:
    """Answer the pending question (if any) and continue the session."""
    from graph.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
        state = sessions.state(session_id)
        # The endpoint in this process's environment wins over the one stored at `run`: it may
        # have moved (a restarted local server) since the session started.
        env_url = os.environ.get("OPENAI_BASE_URL")
        moved = state is not None and env_url and env_url != state.settings.llm_base_url
        if state is not None and (llm or model or moved):
            chosen = _resolve_llm(llm or state.settings.llm, model or state.settings.model,
                                  base_url=env_url or state.settings.llm_base_url)
            state = sessions.update_settings(session_id, llm=chosen.provider, model=chosen.model,
                                             llm_base_url=chosen.base_url)
    except UserError as exc:
        _fail(str(exc))
    if state is not None and sessions.next_step(session_id) is None:
        out.print(f"session {session_id} is already {state.status}"
                  + (f": report at {state.report_path}" if state.report_path else ""), highlight=False)
        raise typer.Exit(0)
    if background:
        if answer is not None and sessions.waiting_at(session_id):
            try:
                from nodes.answers import check_answer

                check_answer(state.pending, answer, state.params)
            except UserError as exc:
                _fail(str(exc))
        raise typer.Exit(_detach(session_id, answer=answer, yes=yes))
    if answer is None and not yes and state is not None and sessions.waiting_at(session_id):
        if not sys.stdin.isatty():
            _show_pending(session_id, state)
            out.print(f"answer with: akg-op resume {session_id} --answer <answer>", highlight=False)
            raise typer.Exit(0)
        answer = _ask(session_id, state)
    raise typer.Exit(_drive(sessions, session_id, answer=answer, auto_approve=yes))


@app.command()
def rollback(
    session_id: str = typer.Argument(...),
    force: bool = typer.Option(False, "--force", help="Restore even files edited since the integration."),
) -> None:
    """Restore every file the session wrote or replaced to its original bytes."""
    from graph.sessions import Sessions
    from integration.errors import IntegrationPackageError
    from integration.integrate import report_section
    from integration.integrate import rollback as restore

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
        state = sessions.state(session_id)
        if state is None or not state.session_dir:
            raise UserError(f"session {session_id} has no work directory: nothing to roll back")
        changes = restore(state.session_dir, force=force)
    except (UserError, IntegrationPackageError) as exc:
        _fail(str(exc))
    sessions.record_rollback(session_id, [c.model_dump(exclude={"note"}) for c in changes])
    if state.report_path and Path(state.report_path).exists():
        with open(state.report_path, "a") as report:
            report.write("\n" + report_section(changes, session_id))
    for change in changes:
        out.print(f"{change.action}: {change.path}", highlight=False)
    out.print(f"rolled back {len(changes)} file(s)", highlight=False)


@app.command(name="sessions")
def list_sessions(limit: int = typer.Option(50, "--limit", "-n")) -> None:
    """List sessions, newest first."""
    from checkpoints.registry import SessionRegistry

    table = Table("id", "op", "phase", "status", "updated", "request")
    for row in SessionRegistry().recent(limit):
        table.add_row(row["id"], row.get("op") or "", row.get("phase") or "", row.get("status") or "",
                      row.get("updated") or "", (row.get("request") or "")[:50])
    out.print(table)


@app.command()
def show(session_id: str = typer.Argument(...)) -> None:
    """Show a session: parameters, phase, pending question, runs and history."""
    from graph.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
    except UserError as exc:
        _fail(str(exc))
    state = sessions.state(session_id)
    row = sessions.registry.get(session_id) or {}
    if state is None:
        _fail(f"session {session_id} has no saved state (it stopped before its first step)")
    out.print(f"[bold]session {session_id}[/]  status={row.get('status', state.status)} phase={row.get('phase', state.phase)}",
              highlight=False)
    out.print(f"request: {state.settings.request or state.settings.task_file}", highlight=False)
    if state.params:
        p = state.params
        out.print(f"params: {p.framework}/{p.backend}/{p.arch}/{p.dsl}", highlight=False)
    for key in ("session_dir", "task_path", "accepted_code_path", "report_path"):
        if getattr(state, key):
            out.print(f"{key}: {getattr(state, key)}", highlight=False)
    if row.get("error"):
        out.print(f"[red]last error:[/] {row['error']}", highlight=False)
    for run in state.runs:
        out.print(f"run {run.workflow}_{run.index}: {run.status}, {run.iterations} iteration(s)", highlight=False)
    if state.pending and sessions.waiting_at(session_id):
        out.print(f"pending: [bold]{state.pending.question}[/] options {', '.join(state.pending.options)} "
                  f"(default {state.pending.default})", highlight=False)
    out.print("history:")
    for line in state.history:
        out.print(f"  {line}", highlight=False)


def _detach(session_id: str, *, settings=None, answer: str | None = None, yes: bool = False) -> int:
    """Continue the session in a detached worker process (its own session, output to a log)."""
    import subprocess

    from checkpoints.home import akg_home

    logs = akg_home() / "logs"
    logs.mkdir(exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "worker", session_id]
    if settings is not None:
        settings_file = logs / f"{session_id}.settings.json"
        settings_file.write_text(settings.model_dump_json())
        command += ["--settings-file", str(settings_file)]
    if answer is not None:
        command += ["--answer", answer]
    if yes:
        command.append("--yes")
    log = (logs / f"{session_id}.log").open("ab")
    worker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, env={**os.environ, "COLUMNS": "120"})
    out.print(f"running in the background (pid {worker.pid}); log: {logs / f'{session_id}.log'}", highlight=False)
    out.print(f"follow it with: akg-op watch {session_id}   or: akg-op status {session_id}", highlight=False)
    return 0


@app.command(hidden=True)
def worker(
    session_id: str,
    settings_file: Optional[Path] = typer.Option(None, "--settings-file"),
    answer: Optional[str] = typer.Option(None, "--answer"),
    yes: bool = typer.Option(False, "--yes"),
) -> None:
    """The detached process behind --background: drives the session to the next gate or the end."""
    from graph.sessions import Sessions
    from graph.state import Settings

    settings = None
    if settings_file is not None:
        settings = Settings.model_validate_json(settings_file.read_text())
        settings_file.unlink()
    raise typer.Exit(_drive(Sessions(), session_id, settings=settings, answer=answer, auto_approve=yes))


def _status_line(info: dict) -> str:
    where = f"waiting at {info['gate']}" if info["gate"] else info["status"]
    worker = "" if info["status"] != "running" else (" (worker running)" if info["worker_alive"] else " (no worker: resume it)")
    line = f"{info['id']}: {where}, phase {info['phase']}{worker}"
    if info["text"]:
        line += f"\n  {info['text']}"
    if info["error"]:
        line += f"\n  last error: {info['error']}"
    return line


@app.command()
def status(session_id: str = typer.Argument(...)) -> None:
    """Progress of a session: phase, candidates done / budget, best speedup, ETA."""
    from graph.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
    except UserError as exc:
        _fail(str(exc))
    out.print(_status_line(sessions.progress(session_id)), highlight=False, markup=False)


@app.command()
def watch(
    session_id: str = typer.Argument(...),
    interval: float = typer.Option(1.0, "--interval", min=0.1),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop watching after this many seconds."),
) -> None:
    """Show a session's progress live until it reaches a question or ends."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from graph.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
    except UserError as exc:
        _fail(str(exc))
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=out,
                  transient=False) as bar:
        task = bar.add_task(session_id, total=1.0)
        while True:
            info = sessions.progress(session_id)
            bar.update(task, completed=info["fraction"] or 0.0,
                       description=escape(f"{session_id} {info['phase']}: {info['text'] or info['status']}"))
            finished = info["gate"] or info["status"] not in ("running",)
            stalled = info["status"] == "running" and not info["worker_alive"]
            if finished or stalled or (timeout and time.monotonic() - started > timeout):
                break
            time.sleep(interval)
    out.print(_status_line(sessions.progress(session_id)), highlight=False, markup=False)


@app.command()
def verify(
    task: Path = typer.Argument(..., help="KernelBench task file (defines Model)."),
    candidate: Path = typer.Argument(..., help="Candidate file (defines ModelNew)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or cuda:N (default: cuda when present)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds before the worker is killed."),
) -> None:
    """Judge a candidate kernel: exit 0 accepted, 1 rejected, 2 bad input."""
    import harness

    try:
        verdict = harness.verify(str(task), str(candidate), device=device, timeout_s=timeout)
    except harness.HarnessInputError as exc:
        _fail(str(exc), 2)
    if as_json:
        print(json.dumps(verdict.to_dict()))
    else:
        colour = "green" if verdict.accepted else "red"
        out.print(f"[{colour}]{verdict.status}[/]", highlight=False)
        out.print(verdict.summary, highlight=False)
    raise typer.Exit(0 if verdict.accepted else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
