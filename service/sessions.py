"""Sessions: start, answer, resume and inspect graph runs persisted in the SQLite checkpointer.

Every entry point (the CLI, the HTTP server) drives sessions through this module, so they behave
the same; every step that changes a session runs under its lock (service.lock).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from checkpoints.registry import SessionRegistry
from checkpoints.saver import open_saver
from graph.builder import GATES, STATE_MODELS, compile_graph
from session_state import SessionState, Settings, now_iso
from nodes.answers import check_answer
from nodes.errors import UserError
from nodes.progress import run_progress, run_workers
from service.lock import holder, session_lock

class UnknownSession(UserError):
    """No session has this id (or id prefix)."""


EventHandler = Callable[[str, dict], None]  # (kind, payload): kind is "step" or "custom"


def _config(session_id: str) -> dict:
    return {"configurable": {"thread_id": session_id}, "recursion_limit": 500}


class Sessions:
    def __init__(self, configurable: dict | None = None):
        self.saver = open_saver(STATE_MODELS)
        self.registry = SessionRegistry()
        self.configurable = configurable or {}  # test hooks, e.g. a generator factory

    def _app(self, auto_approve: bool):
        return compile_graph(self.saver, auto_approve=auto_approve)

    def _cfg(self, session_id: str) -> dict:
        cfg = _config(session_id)
        cfg["configurable"].update(self.configurable)
        return cfg

    def resolve(self, session_id: str) -> str:
        """A full id from a full or unique short id; UserError when there is none."""
        if self.registry.get(session_id):
            return session_id
        matches = self.registry.find(session_id)
        if len(matches) == 1:
            return matches[0]["id"]
        if not matches:
            raise UnknownSession(f"no session '{session_id}': list sessions with `akg-op sessions`")
        raise UserError(f"'{session_id}' matches several sessions ({', '.join(m['id'] for m in matches)}); "
                        "give more of the id")

    def state(self, session_id: str) -> SessionState | None:
        snapshot = self._app(False).get_state(_config(session_id))
        if not snapshot.values:
            return None
        return SessionState.model_validate(snapshot.values)

    def waiting_at(self, session_id: str) -> str | None:
        """The gate the session is paused before, if any."""
        snapshot = self._app(False).get_state(_config(session_id))
        nxt = snapshot.next[0] if snapshot.next else None
        return nxt if nxt in GATES else None

    def next_step(self, session_id: str) -> str | None:
        snapshot = self._app(False).get_state(_config(session_id))
        if snapshot.next:
            return snapshot.next[0]
        # Stopped (Ctrl-C, kill) after a step saved its writes but before the step was closed:
        # `next` is empty, yet resuming applies those writes and goes on.
        return snapshot.tasks[0].name if snapshot.tasks else None

    def update_settings(self, session_id: str, **changes) -> SessionState:
        """Change stored settings (e.g. the model) before resuming; the next steps use them."""
        with session_lock(session_id):
            state = self.state(session_id)
            settings = state.settings.model_copy(update=changes)
            self._app(False).update_state(_config(session_id), {"settings": settings})
            return self.state(session_id)

    def progress(self, session_id: str) -> dict:
        """What `status`/`watch` show: phase, status, the current run's progress, worker liveness."""
        state = self.state(session_id)
        row = self.registry.get(session_id) or {}
        info = {"id": session_id, "status": row.get("status", "unknown"), "phase": row.get("phase", ""),
                "error": row.get("error") or "", "worker_alive": holder(session_id) is not None,
                "text": "", "fraction": None, "gate": self.waiting_at(session_id)}
        if state is not None:
            info["text"], info["fraction"] = run_progress(state)
            info["workers"] = run_workers(state)
        return info

    def record_rollback(self, session_id: str, changes: list[dict]) -> None:
        from session_state import FileChange, log

        with session_lock(session_id):
            state = self.state(session_id)
            records = [FileChange(**c) for c in changes]
            self._app(False).update_state(_config(session_id), {
                "changes": [*state.changes, *records],
                "history": log(state, f"rollback: {len(records)} file(s) restored or removed")})
            self.registry.upsert({"id": session_id, "status": "rolled_back", "updated": now_iso()})

    def rollback(self, session_id: str, *, force: bool = False) -> list:
        """Restore every file the session wrote or replaced (integration.integrate.rollback), record
        it in the session and its report; the restored files' changes are returned."""
        from integration.integrate import report_section
        from integration.integrate import rollback as restore

        with session_lock(session_id):
            state = self.state(session_id)
            if state is None or not state.session_dir:
                raise UserError(f"session {session_id} has no work directory: nothing to roll back")
            changes = restore(state.session_dir, force=force)
            self.record_rollback(session_id, [c.model_dump(exclude={"note"}) for c in changes])
            if state.report_path and Path(state.report_path).exists():
                with open(state.report_path, "a") as report:
                    report.write("\n" + report_section(changes, session_id))
        return changes

    def store_answer(self, session_id: str, answer: str) -> None:
        """Answer the pending gate without running on: a detached worker continues from it."""
        with session_lock(session_id):
            state = self.state(session_id)
            if self.waiting_at(session_id) is None or state is None or state.pending is None:
                raise UserError(f"session {session_id} is not waiting for an answer")
            check_answer(state.pending, answer, state.params)
            self._app(False).update_state(_config(session_id), {"answer": answer})
            self.registry.upsert({"id": session_id, "status": "running", "updated": now_iso()})

    def create(self, settings: Settings) -> str:
        session_id = uuid.uuid4().hex[:12]
        self.registry.upsert({"id": session_id, "op": "", "phase": "start", "status": "running",
                              "request": settings.request or settings.task_file or "",
                              "session_dir": "", "created": now_iso(), "updated": now_iso(),
                              "pid": os.getpid(), "error": ""})
        return session_id

    def advance(self, session_id: str, *, settings: Settings | None = None, answer: str | None = None,
                auto_approve: bool = False, on_event: EventHandler | None = None) -> SessionState:
        """Run the session until the next gate or the end. `settings` starts a new session;
        `answer` answers the pending gate first (validated: an invalid answer changes nothing).
        SessionBusy when another process or request is driving the session."""
        with session_lock(session_id):
            return self._advance(session_id, settings=settings, answer=answer, auto_approve=auto_approve,
                                 on_event=on_event)

    def _advance(self, session_id: str, *, settings: Settings | None, answer: str | None,
                 auto_approve: bool, on_event: EventHandler | None) -> SessionState:
        cfg = self._cfg(session_id)
        current = self.state(session_id)
        if current is None and settings is None:
            raise UserError(f"session {session_id} has no saved state yet; start it again with `akg-op run`")
        stored = current.settings if current is not None else settings
        auto_approve = auto_approve or stored.auto_approve
        app = self._app(auto_approve)
        if current is None:
            graph_input = SessionState(session_id=session_id, settings=settings)
        else:
            graph_input = None
            if answer is not None:
                if self.waiting_at(session_id) is None or current.pending is None:
                    raise UserError(f"session {session_id} is not waiting for an answer")
                check_answer(current.pending, answer, current.params)
                app.update_state(cfg, {"answer": answer})
        self._touch(session_id, error="")
        stopped: tuple[str, str] | None = None  # (status, why) when this drive ends early
        try:
            for mode, chunk in self._stream(app, graph_input, cfg):
                if mode == "updates":
                    for node, update in chunk.items():
                        if on_event:
                            on_event("step", {"node": node, "update": update or {}})
                        self._touch(session_id)
                elif on_event:
                    on_event("custom", chunk)
        except KeyboardInterrupt:
            stopped = ("interrupted", "interrupted (Ctrl-C): akg-op resume continues it")
            raise
        except UserError as exc:
            stopped = ("failed", str(exc))
            raise
        except Exception as exc:
            stopped = ("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            # Nobody drives the session any more: the registry must not say `running`.
            self._touch(session_id, error=stopped[1] if stopped else None,
                        status=stopped[0] if stopped else None)
        return self.state(session_id)

    @staticmethod
    def _stream(app, graph_input, cfg):
        # subgraphs=True yields (namespace, mode, chunk); the namespace does not matter here.
        for item in app.stream(graph_input, cfg, stream_mode=["updates", "custom"], subgraphs=True):
            _namespace, mode, chunk = item
            yield mode, chunk

    def _touch(self, session_id: str, error: str | None = None, status: str | None = None) -> None:
        state = self.state(session_id)
        row = {"id": session_id, "updated": now_iso(), "pid": os.getpid()}
        if error is not None:
            row["error"] = error
        if state is not None:
            gate = self.waiting_at(session_id)
            # The step running (or to run) next is the phase a user sees, e.g. `evolve` while
            # the search runs, not the gate that chose it.
            upcoming = self.next_step(session_id) if state.status == "running" else None
            row.update(op=state.op_name or "", phase=gate or upcoming or state.phase,
                       status="waiting" if gate and state.status == "running" else state.status,
                       session_dir=state.session_dir or "")
        if status is not None:
            row["status"] = status
        self.registry.upsert(row)

    # ------------------------------------------------------------ what every surface shows

    def view(self, session_id: str) -> dict:
        """The HTTP contract's output (the CLI prints the same facts): where the session stands."""
        state = self.state(session_id)
        row = self.registry.get(session_id) or {}
        gate = self.waiting_at(session_id)
        driven = holder(session_id) is not None  # a worker or another request is running it now
        pending = None
        if gate and not driven and state is not None and state.pending is not None and state.answer is None:
            pending = {"gate": state.pending.gate, "question": state.pending.question,
                       "options": list(state.pending.options), "default": state.pending.default}
        status = "running" if driven else row.get("status") or (state.status if state else "running")
        return {"session_id": session_id, "status": status,
                "phase": row.get("phase") or (state.phase if state else "start"), "pending": pending,
                "report": state.report_path if state else None, "error": row.get("error") or None}

    def describe(self, session_id: str) -> dict:
        """What `akg-op show` prints: parameters, phase, pending question, runs and history."""
        state = self.state(session_id)
        if state is None:
            raise UserError(f"session {session_id} has no saved state (it stopped before its first step)")
        row = self.registry.get(session_id) or {}
        p = state.params
        return {
            "session_id": session_id, "status": row.get("status", state.status),
            "phase": row.get("phase", state.phase),
            "request": state.settings.request or state.settings.task_file,
            "params": f"{p.framework}/{p.backend}/{p.arch}/{p.dsl}" if p else None,
            **{key: getattr(state, key) for key in ("session_dir", "task_path", "accepted_code_path", "report_path")},
            "error": row.get("error") or None,
            "runs": [{"run": f"{r.workflow}_{r.index}", "status": r.status, "iterations": r.iterations}
                     for r in state.runs],
            "pending": self.view(session_id)["pending"],
            "history": list(state.history),
        }

    def listing(self, limit: int = 50) -> list[dict]:
        """What `akg-op sessions` prints, newest first."""
        keys = ("id", "op", "phase", "status", "updated", "request")
        return [{k: row.get(k) or "" for k in keys} for row in self.registry.recent(limit)]
