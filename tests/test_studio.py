"""LangGraph Studio's server (`langgraph dev`, in memory, loopback) loads langgraph.json's graph,
stops before every gate, and continues once the gate's answer is written into the thread's state."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.http_server import free_port
from tests.test_cli import independent_relu_check

REQUEST = "Generate a relu kernel, input (128, 4096), fp32, on H100 with Triton"
GATES = ["confirm_params", "confirm_task", "choose_workflow", "review_result"]
OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true",
           "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}


@pytest.fixture
def langgraph_dev(tmp_path, akg_home):
    langgraph = Path(sys.executable).with_name("langgraph")
    if not langgraph.exists():
        langgraph = shutil.which("langgraph")
    assert langgraph, "langgraph-cli[inmem] is a test dependency: pip install -e '.[test]'"
    port = free_port()
    env = {**os.environ, **OFFLINE, "AKG_OP_HOME": str(akg_home),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = (tmp_path / "langgraph_dev.log").open("w")
    # The repo's langgraph.json with its paths made absolute, run from a scratch dir: the dev server
    # keeps its in-memory store's snapshots in ./.langgraph_api, which must not land in the repo.
    config = json.loads((REPO / "langgraph.json").read_text())
    config["dependencies"] = [str((REPO / d).resolve()) for d in config["dependencies"]]
    for name, spec in config["graphs"].items():
        path, _, attribute = spec.partition(":")
        config["graphs"][name] = f"{(REPO / path).resolve()}:{attribute}"
    config.pop("env", None)
    (tmp_path / "langgraph.json").write_text(json.dumps(config))
    process = subprocess.Popen([str(langgraph), "dev", "--config", str(tmp_path / "langgraph.json"), "--host", "127.0.0.1",
                                "--port", str(port), "--no-browser", "--no-reload"],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "langgraph_dev.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/ok").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "langgraph_dev.log").read_text()[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_langgraph_dev_stops_at_every_gate(langgraph_dev, tmp_path, cli_env):
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=langgraph_dev)
    thread = client.threads.create()["thread_id"]
    settings = {"request": REQUEST, "workdir": str(tmp_path / "w"), "out_dir": str(tmp_path / "o")}
    client.runs.wait(thread, "akg_op", input={"settings": settings})
    seen = []
    while (state := client.threads.get_state(thread))["next"]:
        gate = state["next"][0]
        seen.append(gate)
        pending = state["values"]["pending"]
        assert pending["gate"] == gate and pending["question"]
        client.threads.update_state(thread, {"answer": pending["default"]})
        client.runs.wait(thread, "akg_op", input=None)
    assert seen == GATES
    values = state["values"]
    assert values["status"] == "done" and Path(values["report_path"]).exists()
    independent_relu_check(tmp_path / "o" / "relu_generated.py", cli_env)
