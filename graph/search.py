"""The search subgraphs (adaptive_search, evolve): prepare → round ↺ → finish."""
from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from session_state import SessionState
from nodes import search_run


def _after_round(state: SessionState) -> str:
    return "finish" if search_run.search_done(state) else "round"


def build_search() -> StateGraph:
    builder = StateGraph(SessionState)
    builder.add_node("prepare", search_run.prepare)
    builder.add_node("round", search_run.search_round)
    builder.add_node("finish", search_run.finish)
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", _after_round, ["round", "finish"])
    builder.add_conditional_edges("round", _after_round, ["round", "finish"])
    builder.add_edge("finish", END)
    return builder
