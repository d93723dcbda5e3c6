"""Errors as HTTP answers: one line of JSON, `{"error": "..."}`, never a traceback."""
from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from nodes.errors import UserError
from service.lock import SessionBusy
from service.sessions import UnknownSession


def status_code(exc: UserError) -> int:
    if isinstance(exc, SessionBusy):
        return 409
    if isinstance(exc, UnknownSession):
        return 404
    return 400


def one_line(text: str) -> str:
    return " ".join(str(text).split())


async def user_error(request: Request, exc: UserError) -> JSONResponse:
    return JSONResponse({"error": one_line(exc)}, status_code=status_code(exc))


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else "invalid request"
    if isinstance(first, dict):
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        text = f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid request")
    else:
        text = str(first)
    return JSONResponse({"error": one_line(text)}, status_code=422)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    from service.calls import log_internal_error

    log = log_internal_error(exc)
    return JSONResponse({"error": one_line(f"internal error: {type(exc).__name__}: {exc} (details in {log})")},
                        status_code=500)


HANDLERS = {UserError: user_error, RequestValidationError: invalid_request, Exception: internal_error}
