"""The kernelgen subgraph: a bounded, cyclic generate → verify → fix → verify … loop."""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from session_state import SessionState
from nodes import kernelgen


def next_step(state: SessionState) -> str:
    """Where the loop goes after any step: verify fresh code, stop, or ask for (another) kernel."""
    run = state.current_run
    if not run.attempts:
        return "generate"
    last = run.attempts[-1]
    if last.status == "pending":
        return "verify"
    if last.accepted or last.give_up or run.iterations >= state.settings.max_iterations:
        return "finish"
    limit = state.settings.repeat_error_limit
    recent = [a.error_signature for a in run.attempts[-limit:]]
    if len(recent) == limit and len(set(recent)) == 1:
        return "finish"  # the same error `limit` times in a row: the fixer is stuck
    return "fix"


def build_kernelgen() -> StateGraph:
    builder = StateGraph(SessionState)
    builder.add_node("prepare", kernelgen.prepare)
    builder.add_node("generate", kernelgen.generate)
    builder.add_node("fix", kernelgen.fix)
    builder.add_node("verify", kernelgen.verify)
    builder.add_node("finish", kernelgen.finish)
    builder.add_edge(START, "prepare")
    routes = {"generate": "generate", "fix": "fix", "verify": "verify", "finish": "finish"}
    for step in ("prepare", "generate", "fix", "verify"):
        builder.add_conditional_edges(step, next_step, routes)
    builder.add_edge("finish", END)
    return builder
