"""Extraction of a target from a user's file into a KernelBench task (no user code runs here)."""
from __future__ import annotations

import ast
import os

import pytest

from integration import ExtractionError, extract_task
from tests.models.project import MODELS, user_project


def _top_level_names(code: str) -> set[str]:
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name) for a in node.names)
    return names


def test_request_words_find_the_layernorm_class_and_its_use_site_arguments():
    task = extract_task(str(MODELS / "transformer_block.py"),
                        "Optimize the layernorm in /path/to/transformer_block.py", shapes=[(4, 32)])
    assert (task.target_name, task.target_kind, task.op_name) == ("MyLayerNorm", "class", "my_layer_norm")
    # `MyLayerNorm(dim, eps=1e-6)` inside `Block.__init__(self, dim: int = HIDDEN)`, HIDDEN = 32.
    assert task.init_args == [32, 1e-6]
    assert task.needs == []
    names = _top_level_names(task.task_code)
    assert {"MyLayerNorm", "Model", "get_inputs", "get_init_inputs", "torch", "nn"} <= names
    # Only what the target needs: not the rest of the model, not unused imports, not __main__ code.
    assert not names & {"Block", "FeedForward", "TinyTransformer", "math", "F", "HIDDEN"}
    assert "__main__" not in task.task_code
    assert "class Model(MyLayerNorm):" in task.task_code
    # Sizes are constants (the harness shrinks them) and the norm's size follows the input's.
    assert "torch.randn(BATCH, DIM, dtype=torch.float32)" in task.task_code
    assert "return [DIM, 1e-06]" in task.task_code


def test_helper_and_constants_are_collected_with_their_comments_but_not_unused_ones():
    task = extract_task(str(MODELS / "rms_decoder.py"), "Speed up the rms norm", shapes=[[4, 24]])
    assert task.target_name == "RMSNorm"
    names = _top_level_names(task.task_code)
    assert {"EPS", "SCALE_INIT", "_mean_square", "RMSNorm"} <= names
    assert not names & {"_debug_dump", "os", "sys", "WIDTH", "DecoderLayer"}
    assert "# Numerical floor of the norm; shared with other layers of the real model." in task.task_code
    assert task.init_args == [24]


def test_function_target_gets_a_wrapper_model_and_shapes_from_the_request():
    task = extract_task(str(MODELS / "mlp.py"), "Optimize swiglu in mlp.py, gate (8, 32) and up (8, 32), fp16")
    assert (task.target_name, task.target_kind) == ("swiglu", "function")
    assert task.input_shapes == [[8, 32], [8, 32]] and task.dtype == "float16"
    assert "def forward(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:" in task.task_code
    assert "return swiglu(gate, up)" in task.task_code
    assert "torch.randn(D0, D1, dtype=torch.float16)" in task.task_code
    assert {"swiglu", "F"} <= _top_level_names(task.task_code)
    assert "GatedMLP" not in task.task_code


def test_unknown_shapes_are_listed_as_needs_for_the_confirm_gate():
    task = extract_task(str(MODELS / "transformer_block.py"), "optimize MyLayerNorm")
    assert [n.kind for n in task.needs] == ["shapes"]
    assert "MyLayerNorm(x)" in task.needs[0].question
    assert "raise NotImplementedError" in task.task_code
    again = extract_task(str(MODELS / "transformer_block.py"), "optimize MyLayerNorm", shapes=[(2, 32)])
    assert again.complete


def test_two_plausible_targets_is_an_error_listing_both_and_target_resolves_it():
    with pytest.raises(ExtractionError) as error:
        extract_task(str(MODELS / "two_gelus.py"), "Optimize the gelu in two_gelus.py")
    message = str(error.value)
    assert "gelu_reference (function)" in message and "FastGelu (nn.Module)" in message
    assert "--target" in message and "\n" not in message
    task = extract_task(str(MODELS / "two_gelus.py"), "Optimize the gelu", target="FastGelu", shapes=[(4, 16)])
    assert (task.target_name, task.init_args) == ("FastGelu", [])


def test_no_match_lists_the_candidates():
    with pytest.raises(ExtractionError, match=r"no class or function .* candidates: .*RMSNorm \(nn.Module\)"):
        extract_task(str(MODELS / "rms_decoder.py"), "Optimize the softmax")


def test_wrong_number_of_shapes_is_explained():
    with pytest.raises(ExtractionError, match=r"swiglu takes 2 tensor input\(s\) \(gate, up\) but 1 shape"):
        extract_task(str(MODELS / "mlp.py"), "swiglu", shapes=[(8, 32)])


@pytest.mark.parametrize("target, message", [
    ("Softmax", r"target 'Softmax' not found in two_gelus.py; candidates: .*FastGelu"),
    ("Config", r"'Config' in two_gelus.py is a class but not an nn.Module subclass"),
])
def test_bad_targets(target, message):
    with pytest.raises(ExtractionError, match=message):
        extract_task(str(MODELS / "two_gelus.py"), "optimize", target=target)


def test_a_constant_is_not_a_target():
    with pytest.raises(ExtractionError, match="'EPS' in rms_decoder.py is not a class or function"):
        extract_task(str(MODELS / "rms_decoder.py"), "optimize", target="EPS")


def test_missing_file_and_syntax_error_are_one_line_errors(tmp_path):
    with pytest.raises(ExtractionError, match="source file not found: .*nowhere.py"):
        extract_task(str(tmp_path / "nowhere.py"), "optimize the layernorm")
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nclass Norm(torch.nn.Module:\n    pass\n")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ExtractionError, match=r"syntax error in .*broken.py at line 3") as error:
        extract_task(str(broken), "optimize the norm")
    assert "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_extraction_never_writes(tmp_path):
    project = user_project(tmp_path, "transformer_block")
    before = project.tree()
    extract_task(str(project.source), "optimize the layernorm", shapes=[(4, 32)])
    assert project.tree() == before and list(project.workdir.iterdir()) == []


USER_FILE = '''\
import torch
import torch.nn as nn

WIDTH = 8


def rms_norm(x, weight, eps: float):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class Gate(nn.Module):
    def __init__(self, dim, bias=True, scale=1.0):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.scale = scale

    def forward(self, x, temperature: float = 1.0):
        return torch.sigmoid(self.proj(x) / temperature) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(WIDTH))
        self.gate = Gate(WIDTH, scale=2 * 0.5)

    def forward(self, x):
        return self.gate(rms_norm(x, self.w, 1e-6))
'''


def test_literal_arguments_at_use_sites_fill_scalars_and_skipped_defaults(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(USER_FILE)
    norm = extract_task(str(source), "optimize rms_norm", shapes=[(2, 8), (8,)])
    # eps is a float argument written at the call site: it becomes a literal input.
    # Equal sizes share one constant (D1), so shrinking them keeps the inputs compatible.
    assert ("return [torch.randn(D0, D1, dtype=torch.float32), torch.randn(D1, dtype=torch.float32), 1e-06]"
            in norm.task_code)
    gate = extract_task(str(source), "optimize the gate", shapes=[(2, 8)])
    # Gate(WIDTH, scale=2 * 0.5): the constant resolved, the skipped default filled in, the
    # keyword put in its position; forward's defaulted temperature is not an input.
    assert gate.init_args == [8, True, 1.0] and gate.needs == []
    assert "return [DIM, True, 1.0]" in gate.task_code
    given = extract_task(str(source), "optimize the gate", shapes=[(2, 8)], init_args=[8, False])
    assert given.init_args == [8, False]
