"""Integration safety: in-place backups, byte-identical rollback, refused paths, read-only
destinations, failed verification: every refusal is a clear error with nothing written."""
from __future__ import annotations

import json
import os
import stat

import pytest

from integration import (
    IntegrationError, RollbackError, compare_whole_model, extract_task, integrate, report_section, rollback,
)
from integration.rewrite import integrated_source
from tests.models.project import user_project


def _layernorm_project(tmp_path):
    project = user_project(tmp_path, "transformer_block")
    task = extract_task(str(project.source), "optimize the layernorm", shapes=[(4, 32)])
    project.accept_kernel(task.op_name)
    return project, task


def _session_files(project) -> list[str]:
    return sorted(p.name for p in project.workdir.rglob("*"))


def test_in_place_backs_up_and_rolls_back_byte_identical(tmp_path):
    project, task = _layernorm_project(tmp_path)
    original = project.source.read_bytes()
    os.chmod(project.source, 0o640)

    # Verification is the same staging check as without --in-place (see test_integration_e2e).
    changes = integrate(task, str(project.workdir), in_place=True, verify=False)
    modified = next(c for c in changes if c.path == str(project.source))
    assert modified.action == "modified" and modified.backup_path
    assert open(modified.backup_path, "rb").read() == original
    assert stat.S_IMODE(os.stat(project.source).st_mode) == 0o640  # permissions kept
    assert b"class MyLayerNorm(ModelNew):" in project.source.read_bytes()
    manifest = json.loads((project.workdir / "backup" / "manifest.json").read_text())
    assert [e["path"] for e in manifest["entries"]] == [c.path for c in changes]
    # The whole model now runs the Triton kernel and still computes the same thing.
    result = compare_whole_model(modified.backup_path, str(project.source), "TinyTransformer",
                                 init_args=[], input_shapes=[[2, 32]])
    assert result.ok, result.message

    undone = rollback(str(project.workdir))
    assert {c.action for c in undone} == {"restored", "removed"}
    assert project.source.read_bytes() == original
    assert sorted(p.name for p in project.source.parent.iterdir()) == ["transformer_block.py"]
    assert stat.S_IMODE(os.stat(project.source).st_mode) == 0o640
    assert "## Rollback" in report_section(undone)
    with pytest.raises(RollbackError, match="already rolled back"):
        rollback(str(project.workdir))


def test_out_dir_receives_both_files_and_the_source_folder_is_untouched(tmp_path):
    project, task = _layernorm_project(tmp_path)
    before = project.tree()
    out = tmp_path / "out"
    changes = integrate(task, str(project.workdir), out_dir=str(out), verify=False)
    assert sorted(p.name for p in out.iterdir()) == ["my_layer_norm_generated.py",
                                                     "transformer_block_generated.py"]
    assert project.tree() == before
    assert all(c.path.startswith(str(out)) for c in changes)
    rollback(str(project.workdir))
    assert list(out.iterdir()) == []


def test_rollback_refuses_a_file_edited_since_integration_unless_forced(tmp_path):
    project, task = _layernorm_project(tmp_path)
    original = project.source.read_bytes()
    integrate(task, str(project.workdir), in_place=True, verify=False)
    edited = project.source.read_bytes() + b"# the user's later edit\n"
    project.source.write_bytes(edited)
    with pytest.raises(RollbackError, match="changed since the integration .* nothing was restored"):
        rollback(str(project.workdir))
    assert project.source.read_bytes() == edited
    assert (project.source.parent / "my_layer_norm_generated.py").exists()  # all or nothing
    rollback(str(project.workdir), force=True)
    assert project.source.read_bytes() == original


def test_rollback_without_or_with_a_damaged_backup(tmp_path):
    project, task = _layernorm_project(tmp_path)
    with pytest.raises(RollbackError, match="no backup manifest"):
        rollback(str(project.workdir))
    changes = integrate(task, str(project.workdir), in_place=True, verify=False)
    backup = next(c.backup_path for c in changes if c.backup_path)
    with open(backup, "ab") as handle:
        handle.write(b"corrupted")
    integrated = project.source.read_bytes()
    with pytest.raises(RollbackError, match="missing or damaged"):
        rollback(str(project.workdir))
    assert project.source.read_bytes() == integrated


def test_read_only_destination_is_refused_and_nothing_is_written(tmp_path):
    project, task = _layernorm_project(tmp_path)
    before, session_before = project.tree(), _session_files(project)
    folder = project.source.parent
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(IntegrationError, match="read-only destination"):
            integrate(task, str(project.workdir))
    finally:
        os.chmod(folder, 0o755)
    assert project.tree() == before and _session_files(project) == session_before


def test_read_only_source_cannot_be_rewritten_in_place(tmp_path):
    project, task = _layernorm_project(tmp_path)
    os.chmod(project.source, 0o444)
    with pytest.raises(IntegrationError, match="read-only destination"):
        integrate(task, str(project.workdir), in_place=True, verify=False)
    assert not (project.workdir / "backup").exists()


def test_symlinks_and_escaping_paths_are_refused(tmp_path):
    project, task = _layernorm_project(tmp_path)
    outside = tmp_path / "elsewhere.py"
    outside.write_text("precious = True\n")
    # A symlink where the integrated file would go must not redirect the write.
    (project.source.parent / "transformer_block_generated.py").symlink_to(outside)
    with pytest.raises(IntegrationError, match="symlink"):
        integrate(task, str(project.workdir), verify=False)
    assert outside.read_text() == "precious = True\n"

    linked_source = project.source.parent / "linked.py"
    linked_source.symlink_to(project.source)
    with pytest.raises(IntegrationError, match="symlink"):
        integrate(task, str(project.workdir), source_path=str(linked_source), verify=False)

    linked_out = tmp_path / "linked_out"
    linked_out.symlink_to(tmp_path / "elsewhere_dir", target_is_directory=True)
    with pytest.raises(IntegrationError, match="symlink"):
        integrate(task, str(project.workdir), out_dir=str(linked_out), verify=False)

    escaping = task.model_copy(update={"op_name": "../../escape"})
    with pytest.raises(IntegrationError, match="not a valid module name"):
        integrate(escaping, str(project.workdir), verify=False)
    assert not (project.workdir / "backup").exists()


def test_a_kernel_that_changes_the_outputs_is_not_integrated(tmp_path):
    project, task = _layernorm_project(tmp_path)
    accepted = project.workdir / f"{task.op_name}_generated.py"
    accepted.write_text(accepted.read_text().replace("* w + b", "* w + b + 1.0"))
    before, session_before = project.tree(), _session_files(project)
    with pytest.raises(IntegrationError, match="does not match the original .*differs.*nothing was written"):
        integrate(task, str(project.workdir))
    assert project.tree() == before and _session_files(project) == session_before


def test_bad_kernels_and_incomplete_tasks_are_refused(tmp_path):
    project, task = _layernorm_project(tmp_path)
    accepted = project.workdir / f"{task.op_name}_generated.py"
    accepted.write_text("import torch\n\nclass Kernel(torch.nn.Module):\n    pass\n")
    with pytest.raises(IntegrationError, match="defines no class ModelNew"):
        integrate(task, str(project.workdir), verify=False)
    incomplete = extract_task(str(project.source), "optimize the layernorm")
    with pytest.raises(IntegrationError, match="incomplete .*input shapes"):
        integrate(incomplete, str(project.workdir), verify=False)
    with pytest.raises(IntegrationError, match="source file not found"):
        integrate(task, str(project.workdir), source_path=str(tmp_path / "gone.py"), verify=False)


def test_crlf_files_keep_their_line_endings(tmp_path):
    project = user_project(tmp_path, "mlp")
    original = project.source.read_bytes().replace(b"\n", b"\r\n")
    project.source.write_bytes(original)
    task = extract_task(str(project.source), "optimize swiglu", shapes=[(8, 32), (8, 32)])
    project.accept_kernel(task.op_name)
    integrate(task, str(project.workdir), verify=False)
    integrated = (project.source.parent / "mlp_generated.py").read_bytes()
    assert b"\n" not in integrated.replace(b"\r\n", b"")
    untouched = original.split(b"\r\n\r\n\r\nclass GatedMLP")[1]
    assert integrated.endswith(untouched)


def test_a_second_operator_in_the_same_file_gets_its_own_kernel_name():
    source = open(os.path.join(os.path.dirname(__file__), "models", "two_gelus.py")).read()
    first = integrated_source(source, "FastGelu", "class", "fast_gelu_generated")
    second = integrated_source(first.code, "gelu_reference", "function", "gelu_reference_generated")
    assert (first.kernel_name, second.kernel_name) == ("ModelNew", "ModelNew_2")
    assert "from gelu_reference_generated import ModelNew as ModelNew_2" in second.code
    assert "_gelu_reference_kernel = ModelNew_2()" in second.code
    assert "return _gelu_reference_kernel(x)" in second.code
    assert "class FastGelu(ModelNew):" in second.code
    compile(second.code, "two_gelus_generated.py", "exec")


def test_half_precision_task_integrates_with_parameters_in_the_inputs_dtype(tmp_path):
    project = user_project(tmp_path, "rms_decoder")
    task = extract_task(str(project.source), "optimize the rms norm, (4, 24) fp16")
    assert task.dtype == "float16" and "self.to(torch.float16)" in task.task_code
    project.accept_kernel(task.op_name)
    changes = integrate(task, str(project.workdir))  # verified in a worker, in float16
    assert [c.action for c in changes] == ["created", "created"]
