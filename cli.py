"""akg-op command line: start, answer, resume and inspect kernel-generation sessions.

A thin layer over the session service (service/): it parses flags, checks input before any session exists, shows
progress and questions, and turns every error into one line with a non-zero exit code.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.syntax import Syntax

from cli_display import live_steps
from nodes.errors import InvalidAnswer, UserError

# Plain help: every option with its text and, for fixed sets, its choices (rich mode shows <bool>).
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Generate, verify, benchmark and integrate Triton kernels.")
WorkflowName = Literal["kernelgen", "adaptive_search", "evolve"]
DtypeName = Literal["fp32", "fp16", "bf16"]
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
    from service.lock import SessionBusy

    while True:
        try:
            with live_steps(out) as steps:
                state = sessions.advance(session_id, settings=settings, answer=answer,
                                         auto_approve=auto_approve, on_event=steps.on_event)
        except InvalidAnswer as exc:
            state = sessions.state(session_id)
            if not sys.stdin.isatty():  # a script: it must notice, and see what was asked
                _show_pending(session_id, state)
                _fail(f"{exc} (nothing changed; answer with: akg-op resume {session_id} --answer <answer>)", 2)
            err.print(f"[yellow]{escape(str(exc))}[/]", highlight=False)  # nothing changed: ask again
        except SessionBusy as exc:
            _fail(str(exc), 75)  # EX_TEMPFAIL: nothing changed, try again later
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


# ---------------------------------------------------------------- commands


@app.command()
def run(
    request: str = typer.Argument("", help='What to build, e.g. "relu kernel, input (128, 4096), fp32".'),
    task: Optional[Path] = typer.Option(None, "--task", help="An existing KernelBench task file."),
    source: Optional[Path] = typer.Option(None, "--source", help="A source file holding the operator to optimize."),
    target: Optional[str] = typer.Option(None, "--target", help="The class or function in --source."),
    shapes: Optional[str] = typer.Option(None, "--shapes", help="Input shapes, e.g. '(128, 4096)'."),
    dtype: Optional[DtypeName] = typer.Option(None, "--dtype", case_sensitive=False,
                                              help="Element type of the inputs (default: from the request, else fp32)."),
    workflow: Optional[WorkflowName] = typer.Option(None, "--workflow",
                                                    help="The default answer at choose_workflow (default: kernelgen)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Take every gate's default; no questions."),
    workdir: str = typer.Option("~/akg_agents_logs", "--workdir", help="Where session directories go."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where to copy {op}_generated.py (default: here)."),
    in_place: bool = typer.Option(False, "--in-place", help="Rewrite --source itself (after a backup)."),
    framework: Optional[str] = typer.Option(None, "--framework", help="Framework of the reference (torch)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="cuda, ascend or cpu (default: detected)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Target GPU, e.g. h100, a100 (default: detected)."),
    dsl: Optional[str] = typer.Option(None, "--dsl", help="Kernel language: triton_cuda or triton_ascend."),
    max_iterations: int = typer.Option(10, "--max-iterations", min=1, max=100,
                                       help="Generate/fix attempts of a kernelgen run."),
    judge_timeout: float = typer.Option(120.0, "--judge-timeout", min=10, max=3600,
                                        help="Seconds a candidate gets in each judgement (its trials, checks and timing)."),
    llm: Optional[str] = typer.Option(None, "--llm", help="embedded or openai (default: openai when OPENAI_* is set)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name for --llm openai."),
    llm_timeout: Optional[float] = typer.Option(None, "--llm-timeout", help="Seconds per model request."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature of the model (default 0.2)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Most tokens per model reply (default 8192)."),
    option: list[str] = typer.Option([], "--option", help="Search option key=value, repeatable, e.g. "
                                                          "max_candidates=40, time_budget=25m, islands=4."),
    background: bool = typer.Option(False, "--background", help="Detach: run in a worker process, return at once."),
) -> None:
    """Start a session: runs to the first question (or to the end with --yes)."""
    from service.options import build_settings, run_options
    from service.sessions import Sessions

    try:
        options = run_options(dict(
            task=str(task) if task else None, source=str(source) if source else None, target=target,
            shapes=shapes, dtype=dtype, workflow=workflow, yes=yes, workdir=workdir,
            out=str(out_dir) if out_dir else None, in_place=in_place, framework=framework, backend=backend,
            arch=arch, dsl=dsl, max_iterations=max_iterations, judge_timeout=judge_timeout, llm=llm, model=model,
            llm_timeout=llm_timeout, temperature=temperature, max_tokens=max_tokens, option=option,
            background=background))
        settings = build_settings(request, options)
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
    from service.options import resolve_llm
    from service.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
        state = sessions.state(session_id)
        # The endpoint in this process's environment wins over the one stored at `run`: it may
        # have moved (a restarted local server) since the session started.
        env_url = os.environ.get("OPENAI_BASE_URL")
        moved = state is not None and env_url and env_url != state.settings.llm_base_url
        if state is not None and (llm or model or moved):
            chosen = resolve_llm(llm or state.settings.llm, model or state.settings.model,
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
                _show_pending(session_id, state)
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
    session_id: str = typer.Argument(..., help="The session id (or a unique prefix)."),
    force: bool = typer.Option(False, "--force", help="Restore even files edited since the integration."),
) -> None:
    """Restore every file the session wrote or replaced to its original bytes."""
    from integration.errors import IntegrationPackageError
    from service.sessions import Sessions

    sessions = Sessions()
    try:
        changes = sessions.rollback(sessions.resolve(session_id), force=force)
    except (UserError, IntegrationPackageError) as exc:
        _fail(str(exc))
    for change in changes:
        out.print(f"{change.action}: {change.path}", highlight=False)
    out.print(f"rolled back {len(changes)} file(s)", highlight=False)


@app.command(name="sessions")
def list_sessions(limit: int = typer.Option(50, "--limit", "-n", help="How many sessions to list.")) -> None:
    """List sessions, newest first."""
    from checkpoints.registry import SessionRegistry
    from cli_display import sessions_view

    out.print(sessions_view(SessionRegistry().recent(limit), _pid_alive, out.width))


@app.command()
def show(session_id: str = typer.Argument(..., help="The session id (or a unique prefix).")) -> None:
    """Show a session: parameters, phase, pending question, runs and history."""
    from service.sessions import Sessions

    sessions = Sessions()
    try:
        info = sessions.describe(sessions.resolve(session_id))
    except UserError as exc:
        _fail(str(exc))
    out.print(f"[bold]session {info['session_id']}[/]  status={info['status']} phase={info['phase']}", highlight=False)
    out.print(f"request: {info['request']}", highlight=False)
    if info["params"]:
        out.print(f"params: {info['params']}", highlight=False)
    for key in ("session_dir", "task_path", "accepted_code_path", "report_path"):
        if info[key]:
            out.print(f"{key}: {info[key]}", highlight=False)
    if info["error"]:
        out.print(f"[red]last error:[/] {escape(info['error'])}", highlight=False)
    for run in info["runs"]:
        out.print(f"run {run['run']}: {run['status']}, {run['iterations']} iteration(s)", highlight=False)
    if info["pending"]:
        pending = info["pending"]
        out.print(f"pending: [bold]{escape(pending['question'])}[/] options {', '.join(pending['options'])} "
                  f"(default {pending['default']})", highlight=False)
    out.print("history:")
    for line in info["history"]:
        out.print(f"  {line}", highlight=False)


def _pid_alive(pid: int | None) -> bool:
    """Whether a session's worker process still exists."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _detach(session_id: str, *, settings=None, answer: str | None = None, yes: bool = False) -> int:
    """Continue the session in a detached worker process (its own session, output to a log)."""
    from service.background import detach
    from service.lock import SessionBusy

    try:
        pid, log = detach(session_id, settings=settings, answer=answer, yes=yes)
    except SessionBusy as exc:
        _fail(str(exc), 75)
    to_end = yes or (settings is not None and settings.auto_approve)
    until = "to the end, taking every default" if to_end else "until its next question (add --yes to run to the end)"
    out.print(f"running in the background {until} (pid {pid}); log: {log}", highlight=False)
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
    from service.lock import SessionBusy, session_lock

    try:
        with session_lock(session_id):  # taken first: the process that detached us waits for it
            from session_state import Settings
            from service.sessions import Sessions

            settings = None
            if settings_file is not None:
                settings = Settings.model_validate_json(settings_file.read_text())
                settings_file.unlink()
            code = _drive(Sessions(), session_id, settings=settings, answer=answer, auto_approve=yes)
    except SessionBusy as exc:
        _fail(str(exc), 75)
    raise typer.Exit(code)


def _status_line(info: dict) -> str:
    where = f"waiting at {info['gate']}" if info["gate"] else info["status"]
    worker = "" if info["status"] != "running" else (" (worker running)" if info["worker_alive"] else " (no worker: resume it)")
    line = f"{info['id']}: {where}, phase {info['phase']}{worker}"
    if info["text"]:
        line += f"\n  {info['text']}"
    for worker in info.get("workers") or []:
        line += f"\n  worker {worker}"
    if info["error"]:
        line += f"\n  last error: {info['error']}"
    return line


@app.command()
def status(session_id: str = typer.Argument(..., help="The session id (or a unique prefix).")) -> None:
    """Progress of a session: phase, candidates done / budget, best speedup, ETA."""
    from service.sessions import Sessions

    sessions = Sessions()
    try:
        session_id = sessions.resolve(session_id)
    except UserError as exc:
        _fail(str(exc))
    out.print(_status_line(sessions.progress(session_id)), highlight=False, markup=False)


@app.command()
def watch(
    session_id: str = typer.Argument(..., help="The session id (or a unique prefix)."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between refreshes."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop watching after this many seconds."),
) -> None:
    """Show a session's progress live until it reaches a question or ends."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from service.sessions import Sessions

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
            fraction = info["fraction"]  # None: the step does not know how far it is (a pulsing bar)
            bar.update(task, total=None if fraction is None else 1.0, completed=fraction or 0.0,
                       description=escape(f"{session_id} {info['phase']}: {info['text'] or info['status']}"))
            finished = info["gate"] or info["status"] not in ("running",)
            stalled = info["status"] == "running" and not info["worker_alive"]
            if finished or stalled or (timeout and time.monotonic() - started > timeout):
                break
            time.sleep(interval)
    out.print(_status_line(sessions.progress(session_id)), highlight=False, markup=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback is reachable from other machines."),
    port: int = typer.Option(8321, "--port", min=1, max=65535),
) -> None:
    """Serve sessions over HTTP (LangServe): /sessions/invoke, /sessions/stream, /sessions/playground/."""
    from server.app import serve as serve_http

    try:
        serve_http(host, port, say=lambda text: out.print(text, highlight=False, markup=False, soft_wrap=True))
    except UserError as exc:
        _fail(str(exc))


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
    # Child processes (fork servers, the detection probe, background workers) must never import
    # from the user's current folder, whatever packages it holds: Python 3.11+ then leaves `-m`
    # and `-c` children's sys.path without it.
    os.environ.setdefault("PYTHONSAFEPATH", "1")
    app()


if __name__ == "__main__":
    main()
