"""akg-op never imports from the user's current folder, whatever packages it holds (issue 14,
point 9)."""
from __future__ import annotations

import os
import subprocess
import sys

from nodes.env_probe import detect
from tests.conftest import REPO, akg_op_command
from tests.test_cli import REQUEST

IMPOSTOR = """import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "IMPOSTOR_IMPORTED"), "w").write(__name__)
raise ImportError("the user's own {name} package was imported")
"""


def _user_folder(tmp_path, *names):
    folder = tmp_path / "user_project"
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(IMPOSTOR.format(name=name))
    return folder


def test_cli_run_from_a_folder_holding_its_own_harness_package(tmp_path, cli_env):
    folder = _user_folder(tmp_path, "harness", "nodes", "graph", "search", "codegen")
    env = {k: v for k, v in cli_env.items() if k != "PYTHONSAFEPATH"}
    result = subprocess.run(akg_op_command() + ["run", REQUEST, "--yes", "--workdir", str(tmp_path / "w"),
                                                "--out", str(tmp_path / "o")],
                            env=env, cwd=folder, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (folder / "IMPOSTOR_IMPORTED").exists()
    assert (tmp_path / "o" / "relu_generated.py").exists()


def test_environment_probe_ignores_a_torch_package_in_the_current_folder(tmp_path, monkeypatch):
    folder = _user_folder(tmp_path, "torch")
    monkeypatch.chdir(folder)
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    env = detect()
    assert not (folder / "IMPOSTOR_IMPORTED").exists()
    assert env["torch_version"] and env["device_kind"] in ("cpu", "cuda", "npu")


def test_fork_server_started_by_a_library_caller_ignores_the_current_folder(tmp_path):
    """Another entry point (a server, Studio, a script) calling the harness directly: no CLI to set
    PYTHONSAFEPATH for it, so the harness must start its fork server safely itself (main's harness
    starts it in a private folder)."""
    folder = _user_folder(tmp_path, "harness")
    script = ("import harness\n"
              f"print(harness.validate_task({str(REPO / 'tests' / 'tasks_harness' / 'relu.py')!r}, device='cpu').ok)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = str(REPO)
    # -P: the caller itself imports akg-op's harness; only the fork server it starts is in question.
    result = subprocess.run([sys.executable, "-P", "-c", script], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=300)
    assert not (folder / "IMPOSTOR_IMPORTED").exists(), result.stderr[-2000:]
    assert result.stdout.strip().endswith("True"), result.stdout + result.stderr[-2000:]
