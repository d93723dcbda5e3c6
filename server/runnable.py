"""The session service as a LangChain Runnable, so LangServe serves it: invoke runs one call
(service.calls.run_call) to the next gate or the end; stream yields its progress events as they
happen, then the same view invoke returns."""
from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel

from nodes.errors import UserError
from server.errors import status_code
from service.calls import SessionCall, run_call


class PendingQuestion(BaseModel):
    gate: str
    question: str
    options: list[str]
    default: str


class SessionView(BaseModel):
    session_id: str
    status: str
    phase: str
    pending: Optional[PendingQuestion] = None
    report: Optional[str] = None
    error: Optional[str] = None


class _Chunk(dict):
    """A streamed chunk; chunks do not merge: the last one (the view) is the stream's output."""

    def __add__(self, other):
        return other


def _as_call(value: Any) -> SessionCall:
    return value if isinstance(value, SessionCall) else SessionCall.model_validate(value or {})


def _event(kind: str, payload: dict) -> dict | None:
    if kind == "step":
        # LangGraph reports a pause as a step of its own; the final view says where it stopped.
        return None if payload["node"] == "__interrupt__" else {"kind": "step", "node": payload["node"]}
    return {k: v for k, v in payload.items() if isinstance(v, (str, int, float, bool, type(None), list, dict))}


class SessionRunnable(Runnable[SessionCall, dict]):
    name: str = "sessions"

    @property
    def InputType(self) -> type:
        return SessionCall

    @property
    def OutputType(self) -> type:
        return SessionView

    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> dict:
        return self._call_with_config(lambda value: run_call(_as_call(value)), input, config)

    def stream(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> Iterator[dict]:
        yield from self._transform_stream_with_config(iter([input]), self._progress, config)

    async def astream(self, input: Any, config: Optional[RunnableConfig] = None,
                      **kwargs: Any) -> AsyncIterator[dict]:
        async def one():
            yield input

        async for chunk in self._atransform_stream_with_config(one(), self._aprogress, config):
            yield chunk

    async def _aprogress(self, inputs: AsyncIterator[Any]) -> AsyncIterator[dict]:
        values = [value async for value in inputs]
        steps = self._progress(iter(values))
        done = object()
        while (chunk := await run_in_executor(None, next, steps, done)) is not done:
            yield chunk

    def _progress(self, inputs: Iterator[Any]) -> Iterator[dict]:
        """Run the call in a thread; hand its events over as chunks, then its view. A refused call
        ends the stream with {"error", "status_code"} (an HTTP stream has already said 200)."""
        call = _as_call(next(iter(inputs)))
        events: queue.Queue = queue.Queue()
        finished = object()
        outcome: dict = {}

        def work() -> None:
            try:
                outcome["view"] = run_call(call, on_event=lambda kind, payload: events.put(_event(kind, payload)))
            except BaseException as exc:  # handed to the consumer below
                outcome["error"] = exc
            finally:
                events.put(finished)

        threading.Thread(target=work, name="session-call", daemon=True).start()
        while (event := events.get()) is not finished:
            if event is not None:
                yield _Chunk(event=event)
        error = outcome.get("error")
        if isinstance(error, UserError):
            yield _Chunk(error=" ".join(str(error).split()), status_code=status_code(error))
        elif error is not None:
            raise error
        else:
            yield _Chunk(outcome["view"])
