"""Optimize code a user already has, end to end, on the sample models in tests/models/:
extract → validate → (accepted kernel) → integrate → whole model unchanged → rollback.

User code and kernels run only in worker processes (integration.worker.run_check); the Triton
kernels run in the interpreter on CPU.
"""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass

import pytest

from harness import validate_task
from integration import (
    check_extraction, compare_whole_model, extract_task, integrate, report_section, rollback,
)
from tests.models.project import user_project


@dataclass
class Case:
    model: str  # tests/models/<model>.py
    request: str
    target: str | None
    shapes: list[tuple[int, ...]]
    expected_target: str
    op_name: str
    whole_model: str  # the network in the same file that uses the target
    whole_model_inputs: list[list[int]]


CASES = [
    Case("transformer_block", "Optimize the layernorm in transformer_block.py using Triton", None,
         [(4, 32)], "MyLayerNorm", "my_layer_norm", "TinyTransformer", [[3, 32]]),
    Case("mlp", "Optimize swiglu in mlp.py", None,
         [(8, 32), (8, 32)], "swiglu", "swiglu", "GatedMLP", [[5, 16]]),
    Case("two_gelus", "Optimize the gelu in two_gelus.py", "FastGelu",
         [(4, 16)], "FastGelu", "fast_gelu", "Classifier", [[3, 16]]),
    Case("rms_decoder", "Speed up the rms norm in rms_decoder.py", None,
         [(4, 24)], "RMSNorm", "rms_norm", "DecoderLayer", [[2, 24]]),
]


def target_span(source: str, name: str) -> range:
    """0-based line numbers of the target's definition, decorators and comments above included."""
    node = next(n for n in ast.parse(source).body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    lines = source.splitlines()
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return range(first, node.end_lineno)


def assert_only_target_replaced(original: str, integrated: str, target: str) -> None:
    """Every line outside the target's definition is still there, byte for byte and in order;
    lines were only added (the import) or replaced inside the target."""
    span = target_span(original, target)
    before, after = original.splitlines(keepends=True), integrated.splitlines(keepends=True)
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            assert all(i in span for i in range(i1, i2)), f"lines {i1 + 1}-{i2} changed outside {target}"


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_optimize_existing_code_end_to_end(tmp_path, case: Case):
    project = user_project(tmp_path, case.model)
    original_tree = project.tree()

    # Phase 2: extract, then run the task's Model on get_inputs() and compare it with the target
    # imported from the user's own file.
    task = extract_task(str(project.source), case.request, target=case.target, shapes=case.shapes)
    assert (task.target_name, task.op_name, task.needs) == (case.expected_target, case.op_name, [])
    task_file = project.workdir / f"{task.op_name}.py"
    task_file.write_text(task.task_code)
    validation = validate_task(str(task_file), device="cpu")  # the same validation as any task
    assert validation.ok, validation.problems
    extracted = check_extraction(task)
    assert extracted.ok, extracted.message
    assert len(extracted.value["output_shapes"][0]) == len(case.shapes[0])

    # Phase 3/4 stand-in: the hand-written kernel is the accepted one.
    project.accept_kernel(task.op_name)

    # Phase 5: integrate (verified in a worker before anything is written).
    changes = integrate(task, str(project.workdir))
    kernel_file = project.source.parent / f"{task.op_name}_generated.py"
    integrated_file = project.source.parent / f"{case.model}_generated.py"
    assert [(c.path, c.action) for c in changes] == [(str(kernel_file), "created"),
                                                    (str(integrated_file), "created")]
    assert project.source.read_bytes() == original_tree[project.source.name]  # not in place
    integrated = integrated_file.read_text()
    assert f"from {task.op_name}_generated import ModelNew" in integrated
    assert_only_target_replaced(project.source.read_text(), integrated, task.target_name)

    # The whole model, built from the integrated file, computes what the original computed.
    whole = compare_whole_model(str(project.source), str(integrated_file), case.whole_model,
                                init_args=[], input_shapes=case.whole_model_inputs)
    assert whole.ok, f"{whole.message}\n{whole.log_tail}"

    section = report_section(changes, session_id="s123")
    assert str(integrated_file) in section and "akg-op rollback s123" in section

    # Rollback: the user's folder is exactly as it was.
    undone = rollback(str(project.workdir))
    assert {c.action for c in undone} == {"removed"}
    assert project.tree() == original_tree
