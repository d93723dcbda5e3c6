"""Bearer-token auth for every route. The token is `$AKG_OP_TOKEN`, else the one stored (mode 0600)
in `$AKG_OP_HOME/server_token`, generated on the first start.

A browser cannot send a header when a person opens the playground, so `?token=…` on a GET is
accepted once: it is swapped for an HttpOnly, SameSite=Strict cookie and dropped from the URL.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from checkpoints.home import akg_home

TOKEN_ENV = "AKG_OP_TOKEN"
COOKIE = "akg_op_token"


def token_path() -> Path:
    return akg_home() / "server_token"


def server_token() -> tuple[str, bool]:
    """(token, whether it was generated just now)."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], False
    path = token_path()
    if path.exists():
        return path.read_text().strip(), False
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": f"missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                  f"(the server's token is ${TOKEN_ENV} or $AKG_OP_HOME/server_token)"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


def token_middleware(token: str):
    def matches(candidate: str | None) -> bool:
        return bool(candidate) and secrets.compare_digest(candidate.encode(), token.encode())

    async def require_token(request: Request, call_next):
        scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and matches(supplied.strip()):
            return await call_next(request)
        if matches(request.cookies.get(COOKIE)):
            return await call_next(request)
        if request.method == "GET" and matches(request.query_params.get("token")):
            rest = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token")
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        return unauthorized()

    return require_token


class RedactToken(logging.Filter):
    """Keep `?token=…` out of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(re.sub(r"token=[^&\s]+", "token=…", a) if isinstance(a, str) else a
                                for a in record.args)
        return True
