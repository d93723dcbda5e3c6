"""Gate nodes: the graph pauses before each (interrupt_before); resuming runs them with the
client's answer (or the default under --yes). They only turn the answer into state updates and
prepare the next question: no files are written here."""
from __future__ import annotations

from pathlib import Path

from session_state import RunRecord, SessionState, log
from nodes import questions
from nodes.answers import interpret
from nodes.workflows import available_workflows


def _cancel(state: SessionState, gate: str) -> dict:
    return {"status": "cancelled", "phase": gate, "pending": None, "answer": None,
            "history": log(state, f"{gate}: cancelled by the user")}


def confirm_params(state: SessionState) -> dict:
    choice = interpret(state.pending, state.answer, state.params)
    if choice["decision"] == "no":
        return _cancel(state, "confirm_params")
    updates = {"pending": None, "answer": None, "phase": "confirm_params"}
    params = choice.get("params", state.params)
    updates["params"] = params
    updates["history"] = log(state, f"confirm_params: {params.backend}/{params.arch}/{params.dsl}")
    return updates


def confirm_task(state: SessionState) -> dict:
    choice = interpret(state.pending, state.answer)
    if choice["decision"] == "no" and state.fusion is not None:  # fusion mode: skip this one only
        from nodes.fusion import skip_current

        return skip_current(state)
    if choice["decision"] == "no":
        return _cancel(state, "confirm_task")
    if choice["decision"] == "details":  # back to build_task with what the source lacked
        settings = state.settings.model_copy(update=choice["settings"])
        return {"settings": settings, "pending": None, "answer": None, "phase": "confirm_task",
                "history": log(state, f"confirm_task: given {', '.join(choice['settings'])}")}
    return {"pending": questions.choose_workflow(state.settings.workflow, available_workflows(), state.env,
                                                 state.settings.search_options),
            "answer": None, "phase": "confirm_task", "history": log(state, "confirm_task: yes")}


def choose_workflow(state: SessionState) -> dict:
    workflow = interpret(state.pending, state.answer)["decision"]
    index = 1 + sum(run.workflow == workflow for run in state.runs)
    run_dir = Path(state.session_dir) / "output" / f"{workflow}_{index}"
    run = RunRecord(workflow=workflow, index=index, dir=str(run_dir))
    return {"workflow": workflow, "runs": [*state.runs, run], "pending": None, "answer": None,
            "phase": "choose_workflow", "history": log(state, f"choose_workflow: {workflow} run {index}")}


def review_result(state: SessionState) -> dict:
    decision = interpret(state.pending, state.answer)["decision"]
    run = state.current_run
    if decision == "regenerate":
        return {"pending": questions.choose_workflow(state.workflow, available_workflows(), state.env,
                                                     state.settings.search_options),
                "answer": None, "phase": "review_result",
                "history": log(state, f"review_result: regenerate after {run.workflow} run {run.index}")}
    return {"accepted_code_path": run.code_path, "pending": None, "answer": None,
            "phase": "review_result", "history": log(state, f"review_result: accepted {run.workflow} run {run.index}")}
