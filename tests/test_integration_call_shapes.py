"""Integration verifies the rewritten model at the shapes the user's model really calls the target
with (traced from the file's `__main__` block), not only at the task's shapes (issue 14, point 1,
integration half)."""
from __future__ import annotations

import pytest

from integration import IntegrationError, extract_task, integrate
from integration.worker import run_check
from tests.models.project import user_project


def _batched_project(tmp_path):
    """transformer_block.py whose script calls the model (hence MyLayerNorm) with (3, 7, 32)."""
    project = user_project(tmp_path, "transformer_block")
    text = project.source.read_text().replace("model(torch.randn(4, HIDDEN))", "model(torch.randn(3, 7, HIDDEN))")
    project.source.write_text(text)
    return project


def test_calls_are_traced_from_the_script(tmp_path):
    project = _batched_project(tmp_path)
    traced = run_check("integration.checks:trace_target_calls",
                       {"source_path": str(project.source), "target_name": "MyLayerNorm"}, timeout_s=120)
    assert traced.ok and traced.value["calls"] == [[{"shape": [3, 7, 32], "dtype": "float32"}]]


def test_a_kernel_right_only_at_the_task_shape_is_refused(tmp_path):
    project = _batched_project(tmp_path)
    task = extract_task(str(project.source), "optimize the layernorm", shapes=[(8, 32)])
    project.accept_kernel(task.op_name, kernel="my_layer_norm_2d_only")
    before = project.tree()
    with pytest.raises(IntegrationError, match=r"at \(3, 7, 32\), a shape the model calls MyLayerNorm with"):
        integrate(task, str(project.workdir), verify=True)
    assert project.tree() == before  # nothing written


def test_a_kernel_right_at_every_traced_shape_is_integrated(tmp_path):
    project = _batched_project(tmp_path)
    task = extract_task(str(project.source), "optimize the layernorm", shapes=[(8, 32)])
    project.accept_kernel(task.op_name)  # the hand-written Triton ModelNew keeps leading dims
    changes = integrate(task, str(project.workdir), verify=True)
    assert any(c.path.endswith("transformer_block_generated.py") for c in changes)
