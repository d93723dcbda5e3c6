"""A choice says what it will do before it is made, and does it (issue 14, point 5)."""
from __future__ import annotations

import json

import torch

from tests.test_cli import REQUEST, akg, session_id_of

NO_GPU = not torch.cuda.is_available()


def _answer(sid, answer, env, cwd):
    result = akg(["resume", sid, "--answer", answer], env, cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_regenerate_with_the_embedded_generator_explores_another_point(tmp_path, cli_env):
    first = akg(["run", REQUEST, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")], cli_env, tmp_path)
    sid = session_id_of(first)
    assert "tunables are the same for every arch" in first.stdout  # arch= is said not to change the code
    _answer(sid, "yes", cli_env, tmp_path)
    _answer(sid, "yes", cli_env, tmp_path)
    review = _answer(sid, "kernelgen", cli_env, tmp_path)
    assert "another point of its tunable space" in review.stdout  # said before regenerate is picked
    _answer(sid, "regenerate", cli_env, tmp_path)
    _answer(sid, "kernelgen", cli_env, tmp_path)
    runs = sorted((tmp_path / "w").glob("op_relu_*/output/kernelgen_*"))
    assert [r.name for r in runs] == ["kernelgen_1", "kernelgen_2"]
    first_code, second_code = ((r / "iter_01_candidate.py").read_text() for r in runs)
    assert first_code != second_code
    tunables = [json.loads((r / "iter_01_proposal.json").read_text())["meta"]["tunables"] for r in runs]
    moved = {k for k in tunables[0] if tunables[0][k] != tunables[1][k]}
    assert moved and all(k.startswith(("pointwise.", "num_stages")) for k in moved), moved  # a knob relu uses


def test_on_cpu_a_search_is_said_to_stop_after_the_seed_and_does(tmp_path, cli_env):
    if not NO_GPU:
        return  # on a GPU the search has timings and runs in full
    args = ["run", "softmax (32, 256) fp32", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    sid = session_id_of(akg(args, cli_env, tmp_path))
    _answer(sid, "yes", cli_env, tmp_path)
    asked = _answer(sid, "yes", cli_env, tmp_path)
    assert "adaptive_search" in asked.stdout and "verifies the seed kernel and stops" in asked.stdout
    done = akg(["resume", sid, "--answer", "adaptive_search", "--yes"], cli_env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = next((tmp_path / "w").glob("op_softmax_*/output/adaptive_search_1"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "no_timings" and summary["counts"]["total"] == 1
    assert "the search stopped there" in (run_dir / "report_snippet.md").read_text()
