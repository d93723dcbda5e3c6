"""The session graph in one process: every gate, regenerate, cancel, and the kernelgen loop's stops.

Kernels come from a scripted generator; the harness judges them for real (Triton interpreter).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.sessions import Sessions
from session_state import Settings
from nodes.errors import InvalidAnswer
from tests.scripted_generator import BUGGY, GOOD, scripted_factory

REQUEST = "relu kernel, input (64, 256), fp32"


def start(tmp_path, script, calls, **settings):
    sessions = Sessions(configurable={"generator_factory": scripted_factory(script, calls)})
    config = Settings(request=REQUEST, workdir=str(tmp_path / "work"), out_dir=str(tmp_path / "out"), **settings)
    session_id = sessions.create(config)
    state = sessions.advance(session_id, settings=config)
    return sessions, session_id, state


def test_every_gate_then_regenerate_then_accept(tmp_path):
    calls: list = []
    sessions, sid, state = start(tmp_path, [BUGGY, GOOD], calls)
    assert sessions.waiting_at(sid) == "confirm_params"
    assert state.params.arch == "cpu" and state.pending.default == "yes"

    state = sessions.advance(sid, answer="yes")
    assert sessions.waiting_at(sid) == "confirm_task"
    task = Path(state.task_path)
    assert task.name == "relu.py" and "class Model(nn.Module)" in task.read_text()
    assert task.parent.name.startswith("op_relu_")

    state = sessions.advance(sid, answer="yes")
    assert sessions.waiting_at(sid) == "choose_workflow" and state.pending.default == "kernelgen"
    assert state.pending.options == ["kernelgen", "adaptive_search", "evolve"]

    state = sessions.advance(sid, answer="kernelgen")
    assert sessions.waiting_at(sid) == "review_result"
    run = state.runs[0]
    assert [a.status for a in run.attempts] == ["mismatch", "accepted"]
    assert calls[1][0] == "fix" and "mismatch" in calls[1][1].lower()  # the fixer saw the verdict

    state = sessions.advance(sid, answer="regenerate")
    assert sessions.waiting_at(sid) == "choose_workflow"
    state = sessions.advance(sid, answer="kernelgen")
    state = sessions.advance(sid, answer="accept")
    assert sessions.waiting_at(sid) is None and state.status == "done"

    session_dir = Path(state.session_dir)
    assert (session_dir / "output" / "kernelgen_1" / "summary.json").exists()
    assert (session_dir / "output" / "kernelgen_2" / "summary.json").exists()
    assert (session_dir / "relu_generated.py").read_text() == GOOD
    assert (tmp_path / "out" / "relu_generated.py").read_text() == GOOD
    report = (session_dir / "report.md").read_text()
    assert "kernelgen run 1: success" in report and "kernelgen run 2: success" in report
    assert "relu_generated.py" in report and "confirm" not in state.history[-1]


def test_invalid_answer_changes_nothing(tmp_path):
    sessions, sid, state = start(tmp_path, [GOOD], [])
    before = sessions.state(sid)
    with pytest.raises(InvalidAnswer):
        sessions.advance(sid, answer="perhaps")
    assert sessions.state(sid) == before and sessions.waiting_at(sid) == "confirm_params"


def test_no_at_a_confirmation_cancels_cleanly(tmp_path):
    sessions, sid, _ = start(tmp_path, [GOOD], [])
    state = sessions.advance(sid, answer="no")
    assert state.status == "cancelled" and sessions.next_step(sid) is None
    assert sessions.registry.get(sid)["status"] == "cancelled"


def test_parameter_edits_at_confirm_params(tmp_path):
    sessions, sid, _ = start(tmp_path, [GOOD], [])
    state = sessions.advance(sid, answer="arch=a100")
    assert (state.params.backend, state.params.arch, state.params.dsl) == ("cuda", "a100", "triton_cuda")


def test_the_same_error_three_times_stops_the_loop(tmp_path):
    calls: list = []
    _, _, state = start(tmp_path, [BUGGY], calls, auto_approve=True, max_iterations=10)
    run = state.runs[0]
    assert run.status == "failed" and run.iterations == 3 and "same error" in run.error
    assert state.status == "failed" and state.accepted_code_path is None
    summary = json.loads((Path(run.dir) / "summary.json").read_text())
    assert summary["status"] == "failed" and len(summary["attempts"]) == 3
    assert "No kernel accepted" in Path(state.report_path).read_text()


def test_max_iterations_bounds_the_loop(tmp_path):
    _, _, state = start(tmp_path, [BUGGY], [], auto_approve=True, max_iterations=2)
    assert state.runs[0].iterations == 2 and "after 2 iterations" in state.runs[0].error
