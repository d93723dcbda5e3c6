"""One call on a session, as the HTTP endpoint takes it: start one (request + options) or answer /
resume one (session_id [+ answer]); the result is the session's view (Sessions.view).

Bad input raises UserError (InvalidAnswer, SessionBusy) before anything runs; a failure while the
session's steps run is recorded on the session and comes back as the view's `error`, since the
session is kept and can be resumed.
"""
from __future__ import annotations

import traceback
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from checkpoints.home import akg_home
from nodes.answers import check_answer, interpret
from nodes.errors import InvalidAnswer, UserError
from service.background import detach
from service.lock import SessionBusy, session_lock
from service.options import LONG_WORKFLOWS, build_settings, run_options
from service.sessions import EventHandler, Sessions


class SessionCall(BaseModel):
    """Start a session with `request` (and `options`: akg-op run's flags by their long names), or
    answer the pending question of `session_id` with `answer` (without one: resume it)."""

    # Plain strings, "" for absent (null is taken too): LangServe's playground cannot draw a
    # form field for a nullable type.
    model_config = ConfigDict(extra="forbid")

    request: str = Field("", description='What to build, e.g. "relu kernel, input (128, 4096), fp32"')
    options: dict[str, Any] = Field(default_factory=dict,
                                    description='akg-op run flags by long name, e.g. {"workflow": "kernelgen"}')
    session_id: str = Field("", description="The session to answer or resume")
    answer: str = Field("", description="The answer to the pending question, e.g. yes")

    @field_validator("request", "session_id", "answer", mode="before")
    @classmethod
    def _null_is_absent(cls, value: Any) -> Any:
        return "" if value is None else value


def log_internal_error(exc: BaseException | None = None) -> str:
    """Append a traceback (of `exc`, else the one being handled) to `$AKG_OP_HOME/errors.log`."""
    log = akg_home() / "errors.log"
    text = "".join(traceback.format_exception(exc)) if exc is not None else traceback.format_exc()
    with log.open("a") as fh:
        fh.write(text + "\n")
    return str(log)


def run_call(call: SessionCall, *, on_event: EventHandler | None = None,
             sessions: Sessions | None = None) -> dict:
    sessions = sessions or Sessions()
    if not call.session_id:
        return _start(sessions, call, on_event)
    if call.request or call.options:
        raise UserError("give request (and options) to start a session, or session_id (and answer) to answer one; not both")
    return _answer(sessions, sessions.resolve(call.session_id), call.answer or None, on_event)


def _start(sessions: Sessions, call: SessionCall, on_event: EventHandler | None) -> dict:
    if call.answer:
        raise UserError("an answer needs the session_id of the session it answers")
    options = run_options(call.options)
    settings = build_settings(call.request, options)
    session_id = sessions.create(settings)
    if options.background or (options.yes and settings.workflow in LONG_WORKFLOWS):
        detach(session_id, settings=settings, yes=options.yes)
        return sessions.view(session_id)
    return _advance(sessions, session_id, on_event, settings=settings, auto_approve=options.yes)


def _answer(sessions: Sessions, session_id: str, answer: str | None, on_event: EventHandler | None) -> dict:
    # Checked under the lock, so a concurrent answer to the same gate gets SessionBusy rather than
    # a confusing "not waiting" once the winner has moved past the gate.
    with session_lock(session_id):
        state = sessions.state(session_id)
        gate = sessions.waiting_at(session_id)
        if state is not None and sessions.next_step(session_id) is None:
            if answer is not None:
                raise UserError(f"session {session_id} is already {state.status}: there is nothing to answer")
            return sessions.view(session_id)
        if answer is not None and gate is None:
            raise UserError(f"session {session_id} is not waiting for an answer (phase {state.phase if state else 'start'})")
        if gate is not None and answer is None:
            return sessions.view(session_id)  # nothing to do until it is answered
        if gate is not None:
            check_answer(state.pending, answer, state.params)
        long_run = gate == "choose_workflow" and interpret(state.pending, answer)["decision"] in LONG_WORKFLOWS
        if not long_run:
            return _advance(sessions, session_id, on_event, answer=answer)
        sessions.store_answer(session_id, answer)  # answered now; the worker runs the search
    detach(session_id)  # a search takes long: status shows its progress
    return sessions.view(session_id)


def _advance(sessions: Sessions, session_id: str, on_event: EventHandler | None, **kwargs) -> dict:
    try:
        sessions.advance(session_id, on_event=on_event, **kwargs)
    except (InvalidAnswer, SessionBusy):
        raise
    except UserError:
        pass  # recorded on the session by advance; the view carries it
    except Exception:  # a bug of ours: the traceback goes to the log, the view says where
        log = log_internal_error()
        row = sessions.registry.get(session_id) or {}
        sessions.registry.upsert({"id": session_id, "error": f"{row.get('error') or 'internal error'} (details in {log})"})
    return sessions.view(session_id)
