"""`akg-op serve` end to end: a real uvicorn on 127.0.0.1 driving the same sessions as the CLI
(embedded generator, Triton interpreter). One server for the module; each test its own work dir."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from langserve import RemoteRunnable

from tests.conftest import akg_op_command
from tests.http_server import running_server
from tests.test_cli import independent_relu_check, session_id_of

REQUEST = "Generate a relu kernel, input (128, 4096), fp32, on H100 with Triton"
GATES = ["confirm_params", "confirm_task", "choose_workflow", "review_result"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("http_home")) as srv:
        yield srv


def options(tmp_path: Path, **more) -> dict:
    return {"workdir": str(tmp_path / "w"), "out": str(tmp_path / "o"), **more}


def invoke(client: httpx.Client, call: dict) -> dict:
    response = client.post("/sessions/invoke", json={"input": call})
    assert response.status_code == 200, response.text
    return response.json()["output"]


def cli(server, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(akg_op_command() + args, env=server.env, cwd=server.home, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_every_route_needs_the_token(server):
    for method, path in [("GET", "/sessions/list"), ("POST", "/sessions/invoke"), ("POST", "/sessions/stream"),
                         ("GET", "/sessions/0123456789ab"), ("GET", "/sessions/playground/"), ("GET", "/docs")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = httpx.request(method, server.base_url + path, headers=headers, json={"input": {}})
            assert response.status_code == 401, (method, path, response.text)
            assert "\n" not in response.text and "bearer token" in response.json()["error"]


def test_bad_input_is_a_one_line_4xx(server, tmp_path):
    with server.client() as client:
        cases = [({"request": "frobnicate (8, 8)"}, 400, "no known operator"),
                 ({"request": REQUEST, "options": {"max_iterations": 0}}, 400, "max_iterations"),
                 ({"request": REQUEST, "options": {"judge-timeout": 5}}, 400, "judge_timeout"),
                 ({"request": REQUEST, "options": {"colour": "red"}}, 400, "unknown option 'colour'"),
                 ({"session_id": "feedbeef0000", "answer": "yes"}, 404, "no session"),
                 ({"bogus": 1}, 422, "bogus")]
        for call, code, text in cases:
            response = client.post("/sessions/invoke", json={"input": call})
            assert response.status_code == code and text in response.json()["error"], response.text
            assert "Traceback" not in response.text and "\n" not in response.text
        # A stream has said 200 before the call runs: a refused call ends it with the same error.
        with client.stream("POST", "/sessions/stream", json={"input": {"request": "frobnicate (8, 8)"}}) as response:
            events = sse_events(response)
        assert events[-2] == ("data", {"error": events[-2][1]["error"], "status_code": 400}) and events[-1][0] == "end"
        assert "no known operator" in events[-2][1]["error"]


def test_serve_refuses_a_port_in_use_in_one_line(server):
    port = server.base_url.rsplit(":", 1)[1]
    result = cli(server, ["serve", "--port", port])
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "cannot listen on 127.0.0.1" in result.stderr and "Address already in use" in result.stderr


def test_relu_through_all_four_gates_over_plain_http(server, tmp_path):
    with server.client() as client:
        view = invoke(client, {"request": REQUEST, "options": options(tmp_path)})
        assert set(view) == {"session_id", "status", "phase", "pending", "report", "error"}
        sid, seen = view["session_id"], []
        while view["pending"]:
            assert view["status"] == "waiting" and view["error"] is None
            seen.append(view["pending"]["gate"])
            view = invoke(client, {"session_id": sid, "answer": view["pending"]["default"]})
        assert seen == GATES
        assert view["status"] == "done" and Path(view["report"]).exists()
        shown = client.get(f"/sessions/{sid}").json()
        assert any("review_result: accepted" in line for line in shown["history"])
        assert sid in [row["id"] for row in client.get("/sessions/list").json()]
    independent_relu_check(tmp_path / "o" / "relu_generated.py", server.env)


def test_cli_session_answered_with_remote_runnable(server, tmp_path):
    started = cli(server, ["run", REQUEST, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    sid = session_id_of(started)
    assert "Use these parameters?" in started.stdout
    remote = RemoteRunnable(server.base_url + "/sessions/", headers=server.headers, timeout=600)
    seen = []
    view = remote.invoke({"session_id": sid})  # no answer: where does it stand?
    while view["pending"]:
        seen.append(view["pending"]["gate"])
        view = remote.invoke({"session_id": sid, "answer": view["pending"]["default"]})
    assert seen == GATES and view["status"] == "done"
    assert "done" in cli(server, ["sessions"]).stdout
    independent_relu_check(tmp_path / "o" / "relu_generated.py", server.env)


def test_http_session_answered_from_the_cli(server, tmp_path):
    with server.client() as client:
        view = invoke(client, {"request": REQUEST, "options": options(tmp_path)})
        sid = view["session_id"]
        answered = cli(server, ["resume", sid, "--answer", "yes"])
        assert answered.returncode == 0 and "Use this task" in answered.stdout, answered.stdout + answered.stderr
        view = client.get(f"/sessions/{sid}").json()
        assert view["pending"]["gate"] == "confirm_task"
        view = invoke(client, {"session_id": sid, "answer": "no"})
        assert view["status"] == "cancelled" and view["pending"] is None


def sse_events(response: httpx.Response) -> list[tuple[str, dict | None]]:
    events: list[list] = []
    for line in response.iter_lines():
        if line.startswith("event:"):
            events.append([line.split(":", 1)[1].strip(), None])
        elif line.startswith("data:") and line.split(":", 1)[1].strip():
            events[-1][1] = json.loads(line.split(":", 1)[1])
    return [tuple(e) for e in events]


def test_stream_a_kernelgen_run(server, tmp_path):
    call = {"request": REQUEST, "options": options(tmp_path, yes=True, workflow="kernelgen")}
    with server.client() as client, client.stream("POST", "/sessions/stream", json={"input": call}) as response:
        assert response.status_code == 200
        events = sse_events(response)
    data = [payload for kind, payload in events if kind == "data"]
    progress = [chunk["event"] for chunk in data if "event" in chunk]
    steps = [e["node"] for e in progress if e["kind"] == "step"]
    assert steps[:2] == ["env_setup", "confirm_params"] and "report" in steps
    assert any(e["kind"] == "verdict" and e["status"] == "accepted" for e in progress)
    final = data[-1]
    assert [kind for kind, _ in events][0] == "metadata" and events[-1] == ("end", None)
    assert final["status"] == "done" and final["pending"] is None and Path(final["report"]).exists()


def test_two_answers_to_one_gate_one_wins(server, tmp_path):
    with server.client() as client:
        sid = invoke(client, {"request": REQUEST, "options": options(tmp_path)})["session_id"]
        invoke(client, {"session_id": sid, "answer": "yes"})
        assert invoke(client, {"session_id": sid, "answer": "yes"})["pending"]["gate"] == "choose_workflow"
    start, responses = threading.Barrier(2), []

    def answer():
        with server.client() as client:
            start.wait()
            responses.append(client.post("/sessions/invoke", json={"input": {"session_id": sid, "answer": "kernelgen"}}))

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    won = next(r for r in responses if r.status_code == 200).json()["output"]
    lost = next(r for r in responses if r.status_code == 409).json()["error"]
    assert won["pending"]["gate"] == "review_result"
    assert lost.startswith(f"session busy (held by pid {server.process.pid})")
    with server.client() as client:  # the session is intact: one run, answered once
        shown = client.get(f"/sessions/{sid}").json()
    assert [run["run"] for run in shown["runs"]] == ["kernelgen_1"]
    assert sum("choose_workflow:" in line for line in shown["history"]) == 1


def test_a_search_runs_in_the_background_and_status_shows_it(server, tmp_path):
    call = {"request": "softmax (32, 256) fp32",
            "options": options(tmp_path, option={"max_candidates": "2", "max_concurrent": "1"})}
    with server.client() as client:
        sid = invoke(client, call)["session_id"]
        invoke(client, {"session_id": sid, "answer": "yes"})
        invoke(client, {"session_id": sid, "answer": "yes"})
        started = time.monotonic()
        view = invoke(client, {"session_id": sid, "answer": "adaptive_search"})
        assert time.monotonic() - started < 60  # returned before the search ended
        assert view["status"] == "running" and view["pending"] is None
        busy = client.post("/sessions/invoke", json={"input": {"session_id": sid}})
        shown = client.get(f"/sessions/{sid}").json()
        deadline = time.monotonic() + 300
        while shown["pending"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            shown = client.get(f"/sessions/{sid}").json()
        assert shown["pending"]["gate"] == "review_result", shown
        assert [run["run"] for run in shown["runs"]] == ["adaptive_search_1"]
        # Asked while the worker ran (the call returns once the worker holds the session): refused,
        # naming the worker's pid, not the server's.
        assert busy.status_code == 409 and "session busy (held by pid" in busy.json()["error"]
        assert f"pid {server.process.pid})" not in busy.json()["error"]
        view = invoke(client, {"session_id": sid, "answer": "accept"})
        assert view["status"] == "done" and Path(view["report"]).exists()
