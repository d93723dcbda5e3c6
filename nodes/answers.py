"""Interpreting a gate's answer. The CLI calls `check_answer` before it writes an answer, so an
invalid answer is re-asked and changes nothing; the gate nodes call `interpret` to apply it."""
from __future__ import annotations

from graph.state import Params, Pending
from nodes.errors import InvalidAnswer, UserError
from nodes.params import apply_edits, parse_edits

YES = {"yes", "y", "ok", "confirm"}
NO = {"no", "n", "cancel"}


def interpret(pending: Pending, answer: str | None, params: Params | None = None) -> dict:
    """A normalised decision: {"decision": "yes"|"no"|"edit"|<workflow>|"accept"|"regenerate", ...}."""
    text = (answer if answer is not None and answer.strip() else pending.default).strip()
    lowered = text.lower()
    gate = pending.gate
    if gate in ("confirm_params", "confirm_task"):
        if lowered in YES:
            return {"decision": "yes"}
        if lowered in NO:
            return {"decision": "no"}
        if gate == "confirm_params" and "=" in text:
            return {"decision": "edit", "params": apply_edits(params or Params(), parse_edits(text))}
        expected = "yes, no, or key=value edits such as arch=a100" if gate == "confirm_params" else "yes or no"
        raise UserError(f"'{text}' is not an answer to {gate}: answer {expected}")
    if gate in ("choose_workflow", "review_result"):
        if lowered in pending.options:
            return {"decision": lowered}
        raise UserError(f"'{text}' is not an answer to {gate}: answer one of {', '.join(pending.options)}")
    raise UserError(f"unknown gate {gate}")


def check_answer(pending: Pending, answer: str, params: Params | None = None) -> None:
    """Raise InvalidAnswer (saying what to answer) when `answer` is not valid for `pending`."""
    try:
        interpret(pending, answer, params)
    except UserError as exc:
        raise InvalidAnswer(str(exc)) from None
