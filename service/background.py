"""Detached workers: a session continued in its own process (`--background`, and the HTTP
endpoint's long workflows). Moved from cli.py's `_detach`; the CLI prints what it returns."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from checkpoints.home import akg_home
from session_state import Settings
from service.lock import busy_error, holder

WORKER_START_S = 60.0  # a loaded machine may need this long to start Python and take the lock


def detach(session_id: str, *, settings: Settings | None = None, answer: str | None = None,
           yes: bool = False) -> tuple[int, Path]:
    """Start `akg-op worker` for the session (its own process group, output to a log) and return
    (pid, log) once the worker holds the session's lock, so no other caller slips in between.
    SessionBusy when a process is driving the session already."""
    if (driver := holder(session_id)) is not None:
        raise busy_error(session_id, driver)
    logs = akg_home() / "logs"
    logs.mkdir(exist_ok=True)
    cli_path = importlib.util.find_spec("cli").origin  # the worker command lives with the CLI
    command = [sys.executable, cli_path, "worker", session_id]
    if settings is not None:
        settings_file = logs / f"{session_id}.settings.json"
        settings_file.write_text(settings.model_dump_json())
        command += ["--settings-file", str(settings_file)]
    if answer is not None:
        command += ["--answer", answer]
    if yes:
        command.append("--yes")
    log_path = logs / f"{session_id}.log"
    with log_path.open("ab") as log:
        # With PYTHONSAFEPATH the script's own folder is not on the worker's path: name it.
        package_root = os.path.dirname(os.path.abspath(cli_path))
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        worker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, env={**os.environ, "COLUMNS": "120", "PYTHONPATH": path})
    threading.Thread(target=worker.wait, daemon=True).start()  # reaped when it ends (a server lives on)
    deadline = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline and worker.poll() is None and holder(session_id) != worker.pid:
        time.sleep(0.05)
    return worker.pid, log_path
