"""The HTTP app: LangServe's routes for the session runnable under /sessions, the session list and
one session's details, all behind the bearer token."""
from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable

from fastapi import FastAPI, Query

from nodes.errors import UserError
from server.auth import RedactToken, server_token, token_middleware, token_path
from server.errors import HANDLERS
from server.runnable import SessionRunnable


def create_app(token: str) -> FastAPI:
    from langserve import add_routes

    from service.sessions import Sessions

    app = FastAPI(title="akg-op sessions", version="1",
                  description="Start, answer and follow akg-op sessions; the same sessions as the CLI's.")
    app.middleware("http")(token_middleware(token))
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
    # LangServe's fixed routes (invoke, stream, playground, schemas …) come before /sessions/{id}.
    add_routes(app, SessionRunnable(), path="/sessions", enabled_endpoints=(
        "invoke", "stream", "stream_log", "input_schema", "output_schema", "config_schema", "playground"))

    @app.get("/sessions/list")
    def list_sessions(limit: int = Query(50, ge=1, le=1000)) -> list[dict]:
        """What `akg-op sessions` prints, newest first."""
        return Sessions().listing(limit)

    @app.get("/sessions/{session_id}")
    def show_session(session_id: str) -> dict:
        """What `akg-op show` prints."""
        sessions = Sessions()
        return sessions.describe(sessions.resolve(session_id))

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (check --host, or choose another --port)") from None


def serve(host: str, port: int, *, say: Callable[[str], None]) -> None:
    import uvicorn

    _check_free(host, port)
    token, created = server_token()
    app = create_app(token)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    if created:
        say(f"generated the server token (stored in {token_path()}, shown only now): {token}")
    if not is_loopback(host):
        say(f"warning: listening on {host}, not loopback: other machines can reach this server "
            "(every request still needs the token)")
    shown = token if created else "<token>"
    say(f"sessions at {base}/sessions/invoke; playground: {base}/sessions/playground/?token={shown}")
    logging.getLogger("uvicorn.access").addFilter(RedactToken())
    uvicorn.run(app, host=host, port=port, log_level="info")
