"""Prompt templates: each one renders, placeholders are all filled, missing values are errors."""
from __future__ import annotations

import re

import pytest

import prompts.render as render_module
from generators.base import CandidateInfo, GenContext
from generators.prompting import (
    build_task_prompts,
    fix_prompts,
    generate_prompts,
    optimize_direction,
    optimize_prompts,
    probe_prompts,
)
from prompts.render import (
    PromptError,
    fenced,
    hardware_notes,
    optimize_directions,
    render,
    system_prompt,
    template_names,
)

TASK = """import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)
"""
CTX = GenContext(op_name="relu", task_code=TASK, arch="h100", dsl="triton_cuda", device="cuda:0")
ASCEND = GenContext(
    op_name="relu", task_code=TASK, backend="ascend", arch="ascend910b4", dsl="triton_ascend", device="npu"
)
PLACEHOLDER = re.compile(r"\$\{?\w+\}?")


def render_everything() -> list[str]:
    """Every prompt the generators can produce, over every DSL and architecture."""
    parent = CandidateInfo(id="c1", code="class ModelNew: pass", verdict={"speedup_vs_eager": 1.2})
    others = [CandidateInfo(id=f"c{i}", code=f"# candidate {i}", verdict={"timings": {"ms": i}}) for i in range(2, 6)]
    texts: list[str] = []
    for ctx in (CTX, ASCEND, CTX.model_copy(update={"device": "cpu", "arch": "a100"})):
        texts += generate_prompts(ctx)
        texts += fix_prompts(ctx, "class ModelNew: pass", "[MISMATCH] max_abs_err=0.5", ["attempt 1: COMPILE ERROR"])
        texts += optimize_prompts(ctx, parent, others, seed=3)
    texts += build_task_prompts("a relu over (128, 4096) fp32")
    texts += build_task_prompts("the layernorm in this model", excerpt="y = F.layer_norm(x, (d,))")
    texts += probe_prompts()
    texts += [hardware_notes(a) for a in ("a100", "h100", "h200", "ascend910b", "mi300x")]
    return texts


def test_every_template_is_rendered(monkeypatch):
    used: set[str] = set()
    original = render_module.load

    def recording_load(name: str) -> str:
        used.add(name.removesuffix(".md"))
        return original(name)

    monkeypatch.setattr(render_module, "load", recording_load)
    texts = render_everything()
    assert set(template_names()) <= used, f"templates no test renders: {set(template_names()) - used}"
    for text in texts:
        assert not PLACEHOLDER.search(text), f"unfilled placeholder in: {text[:200]}"


def test_generate_prompt_carries_the_task_and_the_target():
    system, user = generate_prompts(CTX)
    assert "class ModelNew" in system and "KernelBench" in system
    assert "132 SMs" in system  # h100 notes
    assert "interpreter" not in system  # verified on a GPU: no interpreter note
    assert TASK.strip() in user and "`relu`" in user


def test_interpreter_note_only_when_verified_on_cpu():
    system = system_prompt(CTX.model_copy(update={"device": "cpu"}))
    assert "TRITON_INTERPRET=1" in system


def test_ascend_prompt_has_ascend_guidance():
    system, _ = generate_prompts(ASCEND)
    assert "Unified Buffer" in system and "torch_npu" in system
    assert "910B3/910B4 have 20 cube cores" in system


def test_fix_prompt_carries_code_feedback_and_history():
    history = [f"attempt {i}: MISMATCH" for i in range(1, 13)]
    _, user = fix_prompts(CTX, "class ModelNew: BROKEN", "[RUNTIME ERROR] boom at line 3", history)
    assert "class ModelNew: BROKEN" in user
    assert "[RUNTIME ERROR] boom at line 3" in user
    assert "attempt 12: MISMATCH" in user and "attempt 1: MISMATCH\n" not in user
    assert "4 earlier attempts not shown" in user
    _, first = fix_prompts(CTX, "x = 1", "err", [])
    assert "this is the first fix" in first


def test_optimize_prompt_has_parent_figures_inspirations_and_a_direction():
    verdict = {"timings": {"candidate_ms": 0.25}, "roofline": {"bw_frac": 0.4}}
    parent = CandidateInfo(id="p", code="# parent", verdict=verdict)
    inspirations = [CandidateInfo(id=f"i{n}", code=f"# idea {n}") for n in range(5)] + [parent]
    _, user = optimize_prompts(CTX, parent, inspirations, seed=1)
    assert "candidate_ms=0.25" in user and "bw_frac=0.4" in user
    assert "# idea 0" in user and "# idea 2" in user and "# idea 3" not in user  # at most 3
    assert user.count("### Candidate") == 3
    assert optimize_direction(1) in user
    assert optimize_direction(0) != optimize_direction(1)
    assert optimize_direction(len(optimize_directions())) == optimize_direction(0)


def test_build_task_prompt_with_and_without_excerpt():
    system, user = build_task_prompts("softmax over the last dim, (64, 1024) bf16")
    assert "get_init_inputs" in system
    assert "softmax over the last dim" in user and "No source code was given" in user
    _, user = build_task_prompts("the norm", excerpt="return self.norm(x)")
    assert "return self.norm(x)" in user and "No source code" not in user


def test_hardware_notes_match_arch_variants():
    assert "4.8 TB/s" in hardware_notes("H200")
    assert "108 SMs" in hardware_notes("nvidia-a100-sxm4")
    assert "Unified Buffer" in hardware_notes("ascend910b4")
    assert 'No hardware notes are available for "mi300x"' in hardware_notes("mi300x")


def test_missing_placeholder_is_an_error():
    with pytest.raises(PromptError, match=r"needs a value for \$\{task_code_block\}"):
        render("tasks/generate", CTX)


def test_unknown_template_and_dsl_are_errors():
    with pytest.raises(PromptError, match="no prompt template"):
        render("tasks/nope")
    with pytest.raises(PromptError, match="no system prompt for DSL 'cuda_c'"):
        system_prompt(CTX.model_copy(update={"dsl": "cuda_c"}))


def test_values_are_not_re_expanded():
    # Kernel code containing "$" or "${...}" must come through verbatim.
    _, user = fix_prompts(CTX, "s = '${op_name} $x'", "cost $5", [])
    assert "s = '${op_name} $x'" in user and "cost $5" in user


def test_fenced_survives_fences_inside():
    block = fenced("print('```')\n```python\nx\n```")
    assert block.startswith("````python\n") and block.endswith("\n````")
