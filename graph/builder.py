"""The session graph: phases as nodes, confirmations as gates paused with interrupt_before.

START → env_setup → [confirm_params] → build_task → [confirm_task] → [choose_workflow]
      → kernelgen | adaptive_search | evolve → [review_result] → integrate → report → END
A failed run goes straight to report; `regenerate` goes back to choose_workflow; `no` at a
confirmation ends the session (cancelled).

Fusion mode (a request to analyse a model): confirm_params → fusion_analysis → [pick_fusion] →
next_fusion → build_task → … → integrate → next_fusion (the loop over the picked opportunities;
a failed one goes on to the next) → integrate_model → report.
"""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from fusion.request import is_fusion_request
from graph.kernelgen import build_kernelgen
from graph.search import build_search
from session_state import STATE_MODELS, SessionState
from nodes import build_task, fusion, gates, integrate, report
from nodes.env_setup import env_setup
from nodes.workflows import available_workflows

GATES = ["confirm_params", "pick_fusion", "confirm_task", "choose_workflow", "review_result"]
WORKFLOWS = available_workflows()  # each is a subgraph node below


def route_confirmed_params(state: SessionState) -> str:
    if state.status == "cancelled":
        return END
    if state.settings.task_file is None and is_fusion_request(state.settings.request):
        return "fusion_analysis"
    return "build_task"


def route_next_fusion(state: SessionState) -> str:
    return "build_task" if state.fusion.position < len(state.fusion.picked) else "integrate_model"


def route_built_task(state: SessionState) -> str:
    """In fusion mode a task that failed validation fails its opportunity only."""
    result = fusion.current(state)
    return "next_fusion" if result is not None and result.status == "failed" else "confirm_task"


def _report_or_next(state: SessionState) -> str:
    return "next_fusion" if state.fusion is not None else "report"


def route_confirmed_task(state: SessionState) -> str:
    """A --source task that lacked shapes goes back to build_task with the answer."""
    if state.status == "cancelled":
        return END
    skipped = fusion.current(state)
    if skipped is not None and skipped.status == "failed":  # fusion mode: `no` skips one opportunity
        return "next_fusion"
    return "build_task" if state.task_path is None else "choose_workflow"


def route_workflow(state: SessionState) -> str:
    return state.workflow


def route_after_run(state: SessionState) -> str:
    return "review_result" if state.current_run.status == "success" else _report_or_next(state)


def route_review(state: SessionState) -> str:
    return "integrate" if state.accepted_code_path else "choose_workflow"


def build_graph() -> StateGraph:
    """The uncompiled builder: the session service compiles it with the SQLite saver, graph/studio.py
    with the interrupts alone (LangGraph Studio brings its own checkpointer)."""
    builder = StateGraph(SessionState)
    builder.add_node("env_setup", env_setup)
    builder.add_node("confirm_params", gates.confirm_params)
    builder.add_node("build_task", build_task.build_task)
    builder.add_node("confirm_task", gates.confirm_task)
    builder.add_node("choose_workflow", gates.choose_workflow)
    builder.add_node("kernelgen", build_kernelgen().compile())
    for search_workflow in ("adaptive_search", "evolve"):  # one subgraph shape, two strategies
        builder.add_node(search_workflow, build_search().compile())
    builder.add_node("review_result", gates.review_result)
    builder.add_node("integrate", integrate.integrate)
    builder.add_node("report", report.report)
    builder.add_node("fusion_analysis", fusion.fusion_analysis)
    builder.add_node("pick_fusion", fusion.pick_fusion)
    builder.add_node("next_fusion", fusion.next_fusion)
    builder.add_node("integrate_model", fusion.integrate_model)

    builder.add_edge(START, "env_setup")
    builder.add_edge("env_setup", "confirm_params")
    builder.add_conditional_edges("confirm_params", route_confirmed_params, ["build_task", "fusion_analysis", END])
    builder.add_edge("fusion_analysis", "pick_fusion")
    builder.add_edge("pick_fusion", "next_fusion")
    builder.add_conditional_edges("next_fusion", route_next_fusion, ["build_task", "integrate_model"])
    builder.add_edge("integrate_model", "report")
    builder.add_conditional_edges("build_task", route_built_task, ["confirm_task", "next_fusion"])
    builder.add_conditional_edges("confirm_task", route_confirmed_task,
                                  ["choose_workflow", "build_task", "next_fusion", END])
    builder.add_conditional_edges("choose_workflow", route_workflow, WORKFLOWS)
    for workflow in WORKFLOWS:
        builder.add_conditional_edges(workflow, route_after_run, ["review_result", "report", "next_fusion"])
    builder.add_conditional_edges("review_result", route_review, ["integrate", "choose_workflow"])
    builder.add_conditional_edges("integrate", _report_or_next, ["report", "next_fusion"])
    builder.add_edge("report", END)
    return builder


def compile_graph(checkpointer, *, auto_approve: bool = False):
    """With auto_approve (--yes) no gate interrupts: each gate takes its default answer."""
    return build_graph().compile(checkpointer=checkpointer,
                                 interrupt_before=[] if auto_approve else GATES)


__all__ = ["GATES", "STATE_MODELS", "build_graph", "compile_graph"]
