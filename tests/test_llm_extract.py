"""Code extraction from model replies: fences, several blocks, prose, no fences, bad code."""
from __future__ import annotations

import ast

from generators.extract import extract_model_new, extract_task

KERNEL = '''import torch
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=offs < n), 0.0), mask=offs < n)
'''

MODEL_NEW = '''class ModelNew(torch.nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
'''

FULL = KERNEL + "\n\n" + MODEL_NEW


def defines(code: str) -> set[str]:
    return {n.name for n in ast.parse(code).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}


def test_fenced_python_block_with_prose_around():
    reply = f"Sure! Here is a fast kernel.\n\n```python\n{FULL}```\n\nIt masks the tail block."
    got = extract_model_new(reply)
    assert got.ok, got.error
    assert got.code.strip() == FULL.strip()


def test_fence_without_language_tag_and_tilde_fences():
    assert extract_model_new(f"```\n{FULL}```").ok
    assert extract_model_new(f"~~~py\n{FULL}~~~").ok


def test_indented_fence_in_a_list_item():
    indented = "\n".join("   " + line if line else "" for line in FULL.splitlines())
    got = extract_model_new(f"1. The module:\n   ```python\n{indented}\n   ```\n")
    assert got.ok, got.error
    assert got.code.startswith("import torch")


def test_last_block_defining_model_new_wins():
    draft = FULL.replace("0.0), mask", "1.0), mask")
    reply = f"First try:\n```python\n{draft}```\nWait, that is wrong. Corrected:\n```python\n{FULL}```"
    got = extract_model_new(reply)
    assert got.ok
    assert "0.0), mask" in got.code and "1.0), mask" not in got.code


def test_blocks_split_across_the_reply_are_joined():
    reply = (
        "The kernel:\n```python\n" + KERNEL + "```\n"
        "A usage example you can ignore:\n```bash\npython run.py\n```\n"
        "And the module:\n```python\n" + MODEL_NEW + "```\n"
    )
    got = extract_model_new(reply)
    assert got.ok, got.error
    assert defines(got.code) == {"relu_kernel", "ModelNew"}
    assert "python run.py" not in got.code
    assert got.code.index("relu_kernel(") < got.code.index("class ModelNew")


def test_unrelated_block_is_not_joined():
    reply = f"```python\n{FULL}```\nTest it with:\n```python\nprint(ModelNew()(x))\n```"
    got = extract_model_new(reply)
    assert got.ok
    assert "print(" not in got.code


def test_no_fences_with_prose_before_and_after():
    reply = f"Here you go:\n{FULL}\nThis kernel is memory-bound and should reach peak bandwidth."
    got = extract_model_new(reply)
    assert got.ok, got.error
    assert "memory-bound" not in got.code and "Here you go" not in got.code


def test_reply_cut_off_inside_a_fence_still_parses_if_complete():
    got = extract_model_new(f"```python\n{FULL}")  # no closing fence
    assert got.ok


def test_think_sections_are_ignored():
    reply = "<think>maybe ```python\nclass ModelNew: pass\n``` no...</think>\n```python\n" + FULL + "```"
    got = extract_model_new(reply)
    assert got.ok
    assert "relu_kernel" in got.code


def test_reply_without_model_new_is_a_clear_failure():
    got = extract_model_new("I cannot write this kernel, sorry.")
    assert not got.ok
    assert "no code defining class ModelNew" in got.error

    got = extract_model_new(f"```python\n{KERNEL}```")
    assert not got.ok
    assert "does not define ModelNew" in got.error


def test_model_new_must_be_a_class():
    got = extract_model_new("```python\ndef ModelNew():\n    return 1\n```")
    assert not got.ok and "does not define ModelNew" in got.error


def test_syntax_error_is_reported_with_line():
    broken = FULL.replace("def forward(self, x):", "def forward(self, x)")
    got = extract_model_new(f"```python\n{broken}```")
    assert not got.ok
    assert "syntax error" in got.error and "line" in got.error


def test_empty_reply():
    assert extract_model_new("").error == "the reply was empty"
    assert not extract_model_new("<think>only thoughts</think>").ok


TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(128, 4096)]


def get_init_inputs():
    return []
'''


def test_extract_task_file():
    got = extract_task(f"The task file:\n```python\n{TASK}```")
    assert got.ok, got.error
    assert defines(got.code) == {"Model", "get_inputs", "get_init_inputs"}


def test_extract_task_names_what_is_missing():
    got = extract_task("```python\n" + TASK.split("def get_init_inputs")[0] + "```")
    assert not got.ok
    assert "get_init_inputs" in got.error
