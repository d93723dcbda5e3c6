"""A real `akg-op serve` on 127.0.0.1 for a test module: one server, one AKG_OP_HOME, one token."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, akg_op_command

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env_for(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k not in ("AKG_OP_LLM", "AKG_OP_MODEL")}
    env.update(AKG_OP_HOME=str(home), AKG_OP_TOKEN=TOKEN, COLUMNS="200",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


class Server:
    def __init__(self, home: Path, base_url: str, env: dict, process: subprocess.Popen):
        self.home, self.base_url, self.env, self.process = home, base_url, env, process
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=600, **kwargs)


@contextlib.contextmanager
def running_server(home: Path, startup_s: float = 120):
    env = env_for(home)
    port = free_port()
    log = (home / "server.log").open("w")
    process = subprocess.Popen(akg_op_command() + ["serve", "--port", str(port)], env=env, cwd=home,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"akg-op serve exited: {(home / 'server.log').read_text()}")
            try:
                if httpx.get(base_url + "/sessions/list", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"akg-op serve did not start: {(home / 'server.log').read_text()}")
            time.sleep(0.2)
        yield Server(home, base_url, env, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
