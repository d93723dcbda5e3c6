"""The graph for LangGraph Studio / `langgraph dev` (langgraph.json): the session graph compiled
to stop before every gate, as the CLI and the HTTP server do. No checkpointer here: the platform
brings its own. Answer a gate by updating the thread's state with {"answer": "..."} and
continuing the run (an empty answer takes the gate's default)."""
from graph.builder import GATES, build_graph

graph = build_graph().compile(interrupt_before=GATES)
graph.name = "akg_op"
