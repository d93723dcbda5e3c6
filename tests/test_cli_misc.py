"""`akg-op verify`, the session list, and the graph LangGraph Studio loads."""
from __future__ import annotations

import json

from langgraph.graph.state import CompiledStateGraph

from tests.conftest import REPO
from tests.test_cli import akg, assert_one_line_error

TASK = REPO / "tests" / "tasks_harness" / "relu.py"
GOOD = REPO / "tests" / "kernels" / "relu_triton.py"
BUGGY = REPO / "tests" / "kernels" / "relu_triton_buggy.py"


def test_verify_exit_codes_and_json(tmp_path, cli_env):
    accepted = akg(["verify", str(TASK), str(GOOD), "--device", "cpu", "--json"], cli_env, tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    verdict = json.loads(accepted.stdout)
    assert verdict["status"] == "accepted" and verdict["triton_launches"] >= 1
    rejected = akg(["verify", str(TASK), str(BUGGY), "--device", "cpu"], cli_env, tmp_path)
    assert rejected.returncode == 1 and "mismatch" in rejected.stdout
    assert_one_line_error(akg(["verify", str(TASK), str(tmp_path / "none.py")], cli_env, tmp_path), "not found")
    assert_one_line_error(akg(["verify", str(GOOD), str(GOOD)], cli_env, tmp_path), "Model")


def test_langgraph_json_graph_stops_before_every_gate():
    config = json.loads((REPO / "langgraph.json").read_text())
    module_path, _, attribute = config["graphs"]["akg_op"].partition(":")
    assert (REPO / module_path).exists()
    from graph import studio
    from graph.builder import GATES

    compiled = getattr(studio, attribute)
    assert isinstance(compiled, CompiledStateGraph) and compiled.checkpointer is None  # the platform's
    assert list(compiled.interrupt_before_nodes) == GATES
    nodes = set(compiled.get_graph().nodes)
    assert {"env_setup", "confirm_params", "build_task", "confirm_task", "choose_workflow", "kernelgen",
            "adaptive_search", "evolve", "review_result", "integrate", "report"} <= nodes
