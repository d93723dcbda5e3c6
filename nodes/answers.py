"""Interpreting a gate's answer. The CLI calls `check_answer` before it writes an answer, so an
invalid answer is re-asked and changes nothing; the gate nodes call `interpret` to apply it."""
from __future__ import annotations

from session_state import Params, Pending
from nodes.errors import InvalidAnswer, UserError
from nodes.params import apply_edits, parse_edits

YES = {"yes", "y", "ok", "confirm"}
NO = {"no", "n", "cancel"}


def interpret(pending: Pending, answer: str | None, params: Params | None = None) -> dict:
    """A normalised decision: {"decision": "yes"|"no"|"edit"|<workflow>|"accept"|"regenerate", ...}."""
    text = (answer if answer is not None and answer.strip() else pending.default).strip()
    lowered = text.lower()
    gate = pending.gate
    if gate == "confirm_task" and pending.asks:
        return _task_details(text, pending.asks)
    if gate in ("confirm_params", "confirm_task"):
        if lowered in YES:
            return {"decision": "yes"}
        if lowered in NO:
            return {"decision": "no"}
        if gate == "confirm_params" and "=" in text:
            return {"decision": "edit", "params": apply_edits(params or Params(), parse_edits(text))}
        expected = "yes, no, or key=value edits such as arch=a100" if gate == "confirm_params" else "yes or no"
        raise UserError(f"'{text}' is not an answer to {gate}: answer {expected}")
    if gate == "pick_fusion":  # fusion mode: which opportunities to realize
        from fusion.request import parse_pick

        return {"decision": "pick", "ranks": parse_pick(text, sum(o.isdigit() for o in pending.options))}
    if gate in ("choose_workflow", "review_result"):
        if lowered in pending.options:
            return {"decision": lowered}
        raise UserError(f"'{text}' is not an answer to {gate}: answer one of {', '.join(pending.options)}")
    raise UserError(f"unknown gate {gate}")


def _task_details(text: str, asks: list[str]) -> dict:
    """'shapes=(8, 512) dtype=fp16 init_args=[512]' → settings updates for a --source task."""
    import ast
    import re

    from nodes.catalogue import DTYPES, parse_shapes_text

    if text.strip().lower() in NO:
        return {"decision": "no"}
    value = r"('[^']*'|\"[^\"]*\"|\([^)]*\)(?:\s*[,;]?\s*\([^)]*\))*|\[[^\]]*\]|\S+)"
    found = dict(re.findall(r"(shapes|dtype|init_args)\s*=\s*" + value, text))
    found = {k: v.strip("'\"") for k, v in found.items()}
    missing = [k for k in asks if k not in found]
    if missing:
        raise UserError(f"this task still needs {', '.join(missing)}: answer e.g. shapes='(8, 512)' init_args='[512]'")
    updates: dict = {}
    if "shapes" in found:
        updates["shapes"] = [list(s) for s in parse_shapes_text(found["shapes"])]
    if "dtype" in found:
        if found["dtype"].lower() not in DTYPES:
            raise UserError(f"unknown dtype '{found['dtype']}': use fp32, fp16 or bf16")
        updates["dtype"] = found["dtype"].lower()
    if "init_args" in found:
        try:
            value = ast.literal_eval(found["init_args"])
        except (ValueError, SyntaxError):
            raise UserError(f"init_args must be a Python list literal such as [512], not {found['init_args']}") from None
        updates["init_args"] = list(value) if isinstance(value, (list, tuple)) else [value]
    return {"decision": "details", "settings": updates}


def check_answer(pending: Pending, answer: str, params: Params | None = None) -> None:
    """Raise InvalidAnswer (saying what to answer) when `answer` is not valid for `pending`."""
    try:
        interpret(pending, answer, params)
    except UserError as exc:
        raise InvalidAnswer(str(exc)) from None
