"""`akg-op run --source`: extract the operator from the user's file, integrate the kernel, roll back."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.test_cli import akg, assert_one_line_error, session_id_of

MODEL = REPO / "tests" / "models" / "transformer_block.py"


def digest_tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def whole_model_outputs_match(folder: Path, env: dict) -> None:
    """The integrated file's TinyTransformer gives the original's outputs (same weights)."""
    script = (
        "import sys, torch, importlib\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "orig = importlib.import_module('model'); new = importlib.import_module('model_generated')\n"
        "torch.manual_seed(0); a = orig.TinyTransformer()\n"
        "b = new.TinyTransformer(); b.load_state_dict(a.state_dict())\n"
        "x = torch.randn(4, 32)\n"
        "torch.testing.assert_close(b(x), a(x), rtol=1e-4, atol=1e-5)\n"
        "print('whole model ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**env, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=300)
    assert "whole model ok" in out.stdout, out.stdout + out.stderr


def test_source_extract_integrate_and_rollback(tmp_path, cli_env):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(MODEL, project / "model.py")
    before = digest_tree(project)
    result = akg(["run", "Optimize the layernorm in model.py", "--source", str(project / "model.py"),
                  "--shapes", "(8, 32)", "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    integrated = (project / "model_generated.py").read_text()
    assert "from my_layer_norm_generated import ModelNew" in integrated
    assert (project / "model.py").read_bytes() == (MODEL.read_bytes())  # not --in-place
    whole_model_outputs_match(project, cli_env)
    report = next((tmp_path / "w").glob("op_my_layer_norm_*")) / "report.md"
    assert "model_generated.py" in report.read_text() and "akg-op rollback" in report.read_text()

    undo = akg(["rollback", session_id_of(result)], cli_env, tmp_path)
    assert undo.returncode == 0, undo.stderr
    assert digest_tree(project) == before
    assert "## Rollback" in report.read_text()


def test_in_place_rewrites_the_source_after_a_backup(tmp_path, cli_env):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(MODEL, project / "model.py")
    original = (project / "model.py").read_bytes()
    result = akg(["run", "Optimize the layernorm", "--source", str(project / "model.py"), "--target", "MyLayerNorm",
                  "--shapes", "8x32", "--in-place", "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"my_layer_norm_generated import ModelNew" in (project / "model.py").read_bytes()
    backups = list((tmp_path / "w").glob("op_*/backup/*model.py"))
    assert any(b.read_bytes() == original for b in backups)
    assert akg(["rollback", session_id_of(result)], cli_env, tmp_path).returncode == 0
    assert (project / "model.py").read_bytes() == original


def test_missing_shapes_are_asked_at_confirm_task(tmp_path, cli_env):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(MODEL, project / "model.py")
    first = akg(["run", "Optimize the layernorm in model.py", "--source", str(project / "model.py"),
                 "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    sid = session_id_of(first)
    step = akg(["resume", sid, "--answer", "yes"], cli_env, tmp_path)  # confirm_params
    assert "input shapes for MyLayerNorm" in step.stdout and "shapes=" in step.stdout
    step = akg(["resume", sid, "--answer", "shapes=(4, 32)"], cli_env, tmp_path)
    assert step.returncode == 0 and "Use this task (my_layer_norm.py)?" in step.stdout, step.stdout + step.stderr


def test_bad_source_input(tmp_path, cli_env):
    assert_one_line_error(akg(["run", "optimize layernorm", "--source", str(tmp_path / "nope.py")], cli_env, tmp_path),
                          "does not exist")
    broken = tmp_path / "broken.py"
    broken.write_text("class LayerNorm(:\n    pass\n")
    result = akg(["run", "optimize layernorm", "--source", str(broken), "--yes", "--workdir", str(tmp_path / "w")],
                 cli_env, tmp_path)
    assert_one_line_error(result, "syntax")
    shutil.copy(MODEL, tmp_path / "model.py")
    result = akg(["run", "optimize the attention", "--source", str(tmp_path / "model.py"), "--target", "Attention",
                  "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(result, "Attention")
    assert not list(tmp_path.glob("*_generated.py"))
