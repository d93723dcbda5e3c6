"""Paths the user names: links decided before any work, nothing written or deleted outside them,
and a killed build_task resumed in the same session folder (issue 14, point 10)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from integration import extract_task, integrate, rollback
from integration.errors import RollbackError
from tests.conftest import REPO, akg_op_command
from tests.models.project import user_project
from tests.test_cli import REQUEST, akg, assert_one_line_error, session_id_of

MODEL = REPO / "tests" / "models" / "transformer_block.py"


def test_source_given_through_a_symlink_is_refused_before_any_session(tmp_path, cli_env):
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(MODEL, real / "model.py")
    original = (real / "model.py").read_bytes()
    (tmp_path / "model.py").symlink_to(real / "model.py")
    result = akg(["run", "Optimize the layernorm", "--source", "model.py", "--in-place", "--shapes", "(8, 32)",
                  "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(result, "refusing to rewrite (--in-place) through a symlink")
    assert str(real / "model.py") in result.stderr  # the link's target is named
    assert "session" not in result.stdout and not (tmp_path / "w").exists()
    assert (real / "model.py").read_bytes() == original


def test_out_through_a_symlink_or_onto_a_file_fails_before_any_work(tmp_path, cli_env):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out_link").symlink_to(elsewhere, target_is_directory=True)
    linked = akg(["run", REQUEST, "--yes", "--out", "out_link", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(linked, "refusing to write through a symlink")
    (tmp_path / "taken.txt").write_text("mine\n")
    onto_file = akg(["run", REQUEST, "--yes", "--out", "taken.txt", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(onto_file, "is an existing file, not a folder")
    assert "FileExistsError" not in onto_file.stderr
    assert not (tmp_path / "w").exists() and list(elsewhere.iterdir()) == []
    assert (tmp_path / "taken.txt").read_text() == "mine\n"


def test_rollback_never_deletes_through_a_folder_replaced_by_a_link(tmp_path):
    project = user_project(tmp_path, "transformer_block")
    task = extract_task(str(project.source), "optimize the layernorm", shapes=[(4, 32)])
    project.accept_kernel(task.op_name)
    integrate(task, str(project.workdir), verify=False)
    folder = project.source.parent
    created = sorted(p.name for p in folder.iterdir())
    # The project folder is moved away and a link to another folder holding same-named files put
    # in its place: rollback must not delete or restore anything over there.
    victim = tmp_path / "victim"
    shutil.move(str(folder), str(tmp_path / "moved"))
    shutil.copytree(tmp_path / "moved", victim)
    folder.symlink_to(victim, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    try:
        rollback(str(project.workdir))
        raise AssertionError("rollback went through the link")
    except RollbackError as exc:
        assert "now leads to" in str(exc) and "nothing was restored" in str(exc)
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before and sorted(before) == created


def test_kill_during_build_task_then_resume_reuses_the_session_folder(tmp_path, cli_env):
    workdir = tmp_path / "w"
    sid = session_id_of(akg(["run", REQUEST, "--workdir", str(workdir), "--out", str(tmp_path / "o")], cli_env, tmp_path))
    proc = subprocess.Popen(akg_op_command() + ["resume", sid, "--answer", "yes"], env=cli_env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(workdir.glob("op_relu_*")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # build_task made the folder; its step was never saved
    proc.wait()
    folders = list(workdir.glob("op_relu_*"))
    assert len(folders) == 1
    resumed = akg(["resume", sid, "--yes"], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert list(workdir.glob("op_relu_*")) == folders and (folders[0] / "report.md").exists()
