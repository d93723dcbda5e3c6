"""The graph for LangGraph Studio / `langgraph dev`: the same uncompiled builder the CLI compiles.

The platform supplies its own checkpointer and lets you set interrupts in the UI; the CLI compiles
this builder with the SQLite saver and interrupts before every gate.
"""
from graph.builder import build_graph

graph = build_graph()
