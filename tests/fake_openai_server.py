"""A scripted OpenAI-compatible server for tests: `/v1/chat/completions` (streaming SSE and plain
JSON, with `usage`) and `/v1/models`, on 127.0.0.1 and an ephemeral port.

Each request takes the next entry of the script, so a test can say "a buggy kernel, then a
correct one", "429, then success", "500 forever", "a reply with no code", "hang past the
timeout". The server records every request body, so a test can assert what the client sent
(e.g. that the second prompt carried the harness's error text).

It cleans up after itself: handlers never wait longer than the server lives, requests beyond
`max_requests` are refused, and the server shuts down after `lifetime_s` even if a test forgets.

    with FakeOpenAIServer([code_reply(BUGGY), code_reply(CORRECT)]) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        ...
        assert "MISMATCH" in server.user_prompts()[1]

Run it by hand for a manual try: `python -m tests.fake_openai_server` serves the relu replies.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Scripted:
    """One scripted answer."""

    content: str = ""  # the assistant's reply (ignored when status != 200)
    status: int = 200
    error_message: str = "scripted failure"  # for status != 200, in OpenAI's error JSON
    delay_s: float = 0.0  # wait before answering: longer than the client's timeout is a hang
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"Retry-After": "0"}
    finish_reason: str = "stop"  # "length" simulates a reply cut off at max_tokens
    send_usage: bool = True  # False: a server that never reports token counts


def code_reply(code: str, prose: str = "Here is the implementation.") -> str:
    """How a typical model answers: a sentence, then one fenced block."""
    return f"{prose}\n\n```python\n{code.strip()}\n```\n"


class FakeOpenAIServer:
    def __init__(
        self,
        script: Sequence[Scripted | str],
        *,
        repeat_last: bool = False,
        model: str = "fake-kernel-model",
        max_requests: int = 50,
        lifetime_s: float = 120.0,
        answer_probes: bool = False,
    ) -> None:
        self.script = [s if isinstance(s, Scripted) else Scripted(content=s) for s in script]
        self.repeat_last = repeat_last
        self.model = model
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        # With answer_probes, Phase 0's endpoint check gets "ok" without using up the script,
        # so a script of kernels does not depend on whether (or how often) the app probes.
        self.answer_probes = answer_probes
        self.probes: list[dict] = []
        self.requests: list[dict] = []  # JSON bodies of chat requests, in arrival order
        self.authorizations: list[str | None] = []  # the Authorization header of each
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._reaper: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._reaper = threading.Timer(self.lifetime_s, self.stop)
        self._reaper.daemon = True
        self._reaper.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # wakes delayed handlers
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._reaper is not None and self._reaper is not threading.current_thread():
            self._reaper.cancel()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the client sent ----------------------------------------------------------------

    def user_prompts(self) -> list[str]:
        """The last user message of each chat request (probes answered aside not included)."""
        out = []
        for body in self.requests:
            users = [m for m in body.get("messages", []) if m.get("role") == "user"]
            out.append(_text(users[-1].get("content")) if users else "")
        return out

    def system_prompts(self) -> list[str]:
        out = []
        for body in self.requests:
            systems = [m for m in body.get("messages", []) if m.get("role") in ("system", "developer")]
            out.append(_text(systems[0].get("content")) if systems else "")
        return out

    # -- scripting ---------------------------------------------------------------------------

    def _next(self, body: dict, authorization: str | None) -> Scripted | None:
        if self.answer_probes and _is_probe(body):
            with self._lock:
                self.probes.append(body)
            return Scripted(content="ok")
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.authorizations.append(authorization)
        if index >= self.max_requests:
            return None
        if index < len(self.script):
            return self.script[index]
        return self.script[-1] if (self.repeat_last and self.script) else None


def _is_probe(body: dict) -> bool:
    from prompts.render import render  # the probe's wording lives in prompts/, not here

    probe = render("tasks/probe").strip()
    return any(_text(m.get("content")).strip() == probe for m in body.get("messages", []))


def _text(content: object) -> str:
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._json(404, _error("not found", "not_found_error"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._json(400, _error("body is not JSON", "invalid_request_error"))
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, _error(f"no route {self.path}", "not_found_error"))
                return
            step = server._next(body, self.headers.get("Authorization"))
            if step is None:
                # 400, not 5xx: a client must not retry its way past the end of a script.
                self._json(400, _error("fake server: script exhausted", "invalid_request_error"))
                return
            if step.delay_s and server._closing.wait(step.delay_s):
                return  # server stopping: drop the connection
            try:
                if step.status != 200:
                    self._json(step.status, _error(step.error_message, "scripted_error"), step.headers)
                elif body.get("stream"):
                    self._stream(body, step)
                else:
                    self._json(200, _completion(body, step, server.model), step.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout fired): fine

        def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, body: dict, step: Scripted) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            for key, value in step.headers.items():
                self.send_header(key, value)
            self.end_headers()
            pieces = _pieces(step.content)
            base = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": server.model,
            }

            def send(choices: list, **extra: object) -> None:
                event = {**base, "choices": choices, **extra}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

            send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for piece in pieces:
                send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            send([{"index": 0, "delta": {}, "finish_reason": step.finish_reason}])
            if step.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                send([], usage=_usage(body, len(pieces)))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _pieces(content: str) -> list[str]:
    """Word-sized chunks, whitespace kept, so the streamed text reassembles exactly."""
    return re.findall(r"\s*\S+|\s+", content)


def _usage(body: dict, completion_tokens: int) -> dict:
    prompt_chars = sum(len(_text(m.get("content"))) for m in body.get("messages", []))
    prompt_tokens = max(1, prompt_chars // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion(body: dict, step: Scripted, model: str) -> dict:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": step.content}, "finish_reason": step.finish_reason}
        ],
    }
    if step.send_usage:
        payload["usage"] = _usage(body, len(_pieces(step.content)))
    return payload


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# -- ready-made replies for the relu task (the end-to-end test's operator) -----------------

RELU_CORRECT_KERNEL = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n_elements, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, tl.where(x < 0, 0.0, x), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        grid = (triton.cdiv(n, 1024),)
        relu_kernel[grid](x, out, n, BLOCK=1024)
        return out
'''

# The bug: negative inputs are scaled by 0.1 instead of zeroed, so the verifier reports a
# mismatch (max_abs_err about 0.1 * max|x|), which the fix prompt must then carry.
RELU_BUGGY_KERNEL = RELU_CORRECT_KERNEL.replace("tl.where(x < 0, 0.0, x)", "tl.where(x > 0, x, 0.1 * x)")


if __name__ == "__main__":
    demo = FakeOpenAIServer([code_reply(RELU_BUGGY_KERNEL), code_reply(RELU_CORRECT_KERNEL)], repeat_last=True)
    with demo:
        print(f"OPENAI_BASE_URL={demo.base_url}  (Ctrl-C to stop)")
        try:
            while not demo._closing.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
