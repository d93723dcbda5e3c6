"""Fusion mode: analyse a model on fake tensors, pick opportunities, realize them as kernels,
integrate them into the model and prove the model still computes the same.

Kernels come from the embedded generator and are judged in the Triton interpreter; the models are
tiny (or, for the analysis alone, 7B-wide on fake tensors, which costs no memory).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.analysis import Analysis, analyse
from fusion.request import is_fusion_request, parse_pick
from service.sessions import Sessions
from session_state import Settings
from nodes.errors import InvalidAnswer, UserError
from tests.conftest import REPO
from tests.test_cli import akg, assert_one_line_error, session_id_of

DECODER = REPO / "tests" / "models" / "decoder_block.py"
QWEN2_REQUEST = "Analyze Qwen2 model for operator fusion opportunities and realize"

STOPS_EARLY = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Norm(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


class Gated(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.norm = Norm(dim)
        self.gate = nn.Linear(dim, dim)
        self.up = nn.Linear(dim, dim)

    def forward(self, x):
        h = F.silu(self.gate(self.norm(x))) * self.up(x)
        if h.abs().max() > 100:
            h = h / 100
        return h
'''


def test_qwen2_at_7b_width_on_fake_tensors():
    """One full-width layer, counted 28 times: RMSNorm and SwiGLU are found and ranked by bytes."""
    analysis = Analysis.model_validate(analyse({"kind": "hf", "arch": "qwen2", "dtype": "bfloat16",
                                                "arch_params": "h100"})["analysis"])
    assert analysis.capture_error is None and analysis.layers_total == 28
    by_name = {o.name: o for o in analysis.opportunities}
    assert {"rmsnorm", "add_rmsnorm", "swiglu", "rotary_embedding", "qkv_merge"} <= set(by_name)
    saved = [o.bytes_saved_total for o in analysis.opportunities]
    assert saved == sorted(saved, reverse=True) and [o.rank for o in analysis.opportunities] == list(range(1, len(saved) + 1))

    swiglu = by_name["swiglu"]
    element = 2 * 1024 * 18944 * 2  # one (2, 1024, 18944) bf16 tensor
    assert swiglu.ops == ["silu", "mul"] and swiglu.occurrences == 28
    assert (swiglu.bytes_unfused, swiglu.bytes_fused) == (5 * element, 3 * element)
    assert swiglu.swap["class"] == "Qwen2MLP"
    assert swiglu.time_saved_us == pytest.approx(28 * 2 * element / 3.35e12 * 1e6, rel=1e-3)
    rmsnorm = by_name["rmsnorm"]
    assert rmsnorm.occurrences == 29 and rmsnorm.swap["class"] == "Qwen2RMSNorm"  # every layer + the final norm
    assert any("modeling_qwen2.py:" in loc for loc in rmsnorm.locations)
    assert "class Model(nn.Module)" in rmsnorm.task_code and "D2 = 3584" in rmsnorm.task_code
    # The residual add joins the norm after it, not the add after the MLP (which needs the norm's output).
    add_norm = by_name["add_rmsnorm"]
    assert add_norm.ops == ["add", "_to_copy", "pow", "mean", "add", "rsqrt", "mul", "_to_copy", "mul"]
    assert len(add_norm.outputs) == 2 and add_norm.swap is None
    qkv = by_name["qkv_merge"]  # the normed activation read once instead of three times
    assert qkv.ops == ["addmm"] * 3 and qkv.bytes_saved == 2 * (2 * 1024 * 3584 * 2)
    assert "def forward(self, x0, weight, bias, k_proj_weight, k_proj_bias, v_proj_weight, v_proj_bias)" in qkv.task_code


@pytest.mark.parametrize("arch,mlp", [("llama", "LlamaMLP"), ("mistral", "MistralMLP")])
def test_other_architectures_are_analysed(arch, mlp):
    analysis = analyse({"kind": "hf", "arch": arch, "shapes": [[2, 64]]})["analysis"]
    swaps = {o["swap"]["class"] for o in analysis["opportunities"] if o["swap"]}
    assert mlp in swaps and any(o["pattern"] == "rmsnorm" for o in analysis["opportunities"])


def test_a_forward_that_stops_says_where_and_keeps_what_it_found(tmp_path):
    source = tmp_path / "gated.py"
    source.write_text(STOPS_EARLY)
    analysis = analyse({"kind": "file", "source_file": str(source), "shapes": [[4, 32]], "dtype": "float32"})["analysis"]
    assert f"{source}:24" in analysis["capture_error"] and "h.abs().max() > 100" in analysis["capture_error"]
    assert {"swiglu", "rmsnorm"} <= {o["name"] for o in analysis["opportunities"]}
    assert analysis["target"] == "Gated"


def test_requests_and_pick_answers():
    assert is_fusion_request(QWEN2_REQUEST) and is_fusion_request("find fusable ops in my model")
    assert not is_fusion_request("relu kernel, input (64, 256), fp32")
    assert not is_fusion_request("Optimize the fused layernorm in model.py")
    assert parse_pick("1,3", 5) == [1, 3] and parse_pick("all", 3) == [1, 2, 3]
    assert parse_pick("top 2", 5) == [1, 2] and parse_pick("top 9", 2) == [1, 2] and parse_pick("none", 4) == []
    with pytest.raises(UserError, match="no opportunity 7"):
        parse_pick("7", 4)
    with pytest.raises(UserError, match="not an answer"):
        parse_pick("the best ones", 4)


def test_a_model_file_needs_its_input_shapes(tmp_path, cli_env):
    shutil.copy(DECODER, tmp_path / "model.py")
    result = akg(["run", "Analyze this model for fusion opportunities", "--source", str(tmp_path / "model.py"),
                  "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(result, "--shapes")


def test_unknown_architecture_names_the_known_ones(tmp_path, cli_env):
    result = akg(["run", "Analyze Falcon model for operator fusion opportunities", "--yes",
                  "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert_one_line_error(result, "unknown architecture 'Falcon'")
    assert "Qwen2, Llama, Mistral, GPT-2" in result.stderr and not (tmp_path / "w").exists()


def test_qwen2_fusion_session_end_to_end(tmp_path, cli_env):
    result = akg(["run", QWEN2_REQUEST, "--yes", "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    root = next((tmp_path / "w").glob("op_qwen2_fusion_*"))
    analysis = json.loads((root / "fusion_analysis.json").read_text())
    names = [o["name"] for o in analysis["opportunities"]]
    assert {"rmsnorm", "swiglu"} <= set(names) and (root / "fusion_analysis.md").exists()
    for name in names[:3]:  # --yes realizes the top 3
        assert (root / "fusions" / name / f"{name}.py").exists()
        assert (root / "fusions" / name / f"{name}_generated.py").exists()
        assert (root / "fusions" / name / "output" / "kernelgen_1" / "summary.json").exists()
    report = (root / "report.md").read_text()
    assert "3 of 3 picked fusions realized" in report and "matches the original" in report
    fused = root / "qwen2_fused.py"
    assert "def apply_fusions(model)" in fused.read_text()

    # Independently of the session's own check: a small Qwen2, same weights, same logits.
    script = (
        "import sys, torch, transformers\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from qwen2_fused import apply_fusions\n"
        "config = transformers.Qwen2Config(hidden_size=48, intermediate_size=96, num_attention_heads=4,\n"
        "    num_key_value_heads=2, num_hidden_layers=3, vocab_size=100, max_position_embeddings=64)\n"
        "torch.manual_seed(0); model = transformers.Qwen2ForCausalLM(config).eval()\n"
        "ids = torch.randint(0, 100, (2, 12))\n"
        "with torch.no_grad():\n"
        "    before = model(ids).logits\n"
        "    after = apply_fusions(model)(ids).logits\n"
        "swapped = sum('forward' in vars(m) for m in model.modules())\n"
        "assert swapped >= 3, swapped\n"
        "torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)\n"
        "print('same logits', swapped)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**cli_env, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=300)
    assert "same logits" in out.stdout, out.stdout + out.stderr


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_decoder_file_rewritten_in_place_then_rolled_back(tmp_path, cli_env):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(DECODER, project / "model.py")
    before = digest(project)
    result = akg(["run", "Analyze this model for fusion opportunities and realize", "--source",
                  str(project / "model.py"), "--shapes", "(2, 16)", "--in-place", "--yes",
                  "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rewritten = (project / "model.py").read_text()
    assert "from rmsnorm_generated import ModelNew" in rewritten and "from swiglu_generated import ModelNew" in rewritten
    assert "return _rmsnorm_kernel(x, self.weight)" in rewritten
    assert "return self.down(_swiglu_kernel(self.gate(x), self.up(x)))" in rewritten
    assert rewritten.count("class ") == DECODER.read_text().count("class ")  # nothing else moved

    script = (
        "import sys, torch, importlib.util\n"
        "def load(path, name):\n"
        "    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(m); return m\n"
        f"sys.path.insert(0, {str(project)!r})\n"
        f"orig = load({str(DECODER)!r}, 'orig'); new = load({str(project / 'model.py')!r}, 'new')\n"
        "torch.manual_seed(0); a = orig.TinyDecoder().eval(); b = new.TinyDecoder().eval()\n"
        "b.load_state_dict(a.state_dict())\n"
        "ids = torch.randint(0, orig.VOCAB, (2, 16))\n"
        "with torch.no_grad():\n"
        "    torch.testing.assert_close(b(ids), a(ids), rtol=1e-4, atol=1e-5)\n"
        "print('same outputs')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**cli_env, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=300)
    assert "same outputs" in out.stdout, out.stdout + out.stderr
    report = next((tmp_path / "w").glob("op_model_fusion_*")) / "report.md"
    assert "matches the original" in report.read_text() and "akg-op rollback" in report.read_text()

    undo = akg(["rollback", session_id_of(result)], cli_env, tmp_path)
    assert undo.returncode == 0, undo.stderr
    assert digest(project) == before


class FailsFor:
    """The embedded generator, except that it gives up on one opportunity."""

    name = "embedded"

    def __init__(self, failing: str):
        from generators.embedded import EmbeddedGenerator

        self.inner, self.failing = EmbeddedGenerator(), failing

    def generate(self, ctx):
        from generators.base import Proposal

        if ctx.op_name == self.failing:
            return Proposal(error="cannot lower this region", meta={"give_up": True})
        return self.inner.generate(ctx)

    def fix(self, ctx, code, feedback, history):
        return self.generate(ctx)


def test_pick_gate_and_a_failed_opportunity_leaves_the_others_going(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(DECODER, project / "model.py")
    sessions = Sessions(configurable={"generator_factory": lambda settings: FailsFor("swiglu")})
    settings = Settings(request="find fusion opportunities in this model", source_file=str(project / "model.py"),
                        shapes=[[2, 16]], workdir=str(tmp_path / "w"), auto_approve=False)
    sid = sessions.create(settings)
    sessions.advance(sid, settings=settings)
    state = sessions.advance(sid, answer="yes")  # confirm_params
    assert sessions.waiting_at(sid) == "pick_fusion" and state.pending.default == "top 3"
    assert "| 1 | rmsnorm" in state.pending.detail
    with pytest.raises(InvalidAnswer):
        sessions.advance(sid, answer="9")
    ranks = {o.name: o.rank for o in Analysis.model_validate_json(Path(state.fusion.analysis_path).read_text()).opportunities}
    state = sessions.advance(sid, answer=f"{ranks['rmsnorm']},{ranks['swiglu']},{ranks['add_rmsnorm']}")
    assert state.fusion.picked == ["rmsnorm", "swiglu", "add_rmsnorm"]
    while state.fusion.position < 1 or sessions.waiting_at(sid) != "confirm_task":
        state = sessions.advance(sid, answer="")  # every later gate's default
    # Another process picks the session up where it was: the second opportunity's task.
    sessions = Sessions(configurable={"generator_factory": lambda settings: FailsFor("swiglu")})
    state = sessions.state(sid)
    assert state.fusion.position == 1 and state.op_name == "swiglu" and sessions.waiting_at(sid) == "confirm_task"
    assert state.fusion.results[0].status == "realized"
    while state.fusion.position < 2 or sessions.waiting_at(sid) != "confirm_task":
        state = sessions.advance(sid, answer="")
    state = sessions.advance(sid, answer="no")  # the third: skipped, the session goes on
    assert sessions.waiting_at(sid) is None and state.status == "done"
    results = {r.name: r for r in state.fusion.results}
    assert results["add_rmsnorm"].status == "failed" and "skipped" in results["add_rmsnorm"].error
    assert results["rmsnorm"].status == "realized"
    assert results["swiglu"].status == "failed" and "cannot lower" in results["swiglu"].error
    report = Path(state.report_path).read_text()
    assert "Failed: swiglu" in report and "RMSNorm ← rmsnorm" in report
    assert "_rmsnorm_kernel" in (project / "model_generated.py").read_text()  # not --in-place
    assert (project / "model.py").read_bytes() == DECODER.read_bytes()
