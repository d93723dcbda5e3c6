"""Every line the CLI shows is true and whole: help, spinners, status, the sessions table, the
environment cache note and shrunk shapes (issue 14, point 6)."""
from __future__ import annotations

import io
import json
import re

from rich.console import Console

from cli_display import NEXT_ACTIVITY, live_steps
from service.sessions import Sessions
from session_state import Settings
from search import format_progress
from search.progress import Progress
from tests.test_cli import REQUEST, akg, session_id_of


def test_help_gives_every_option_a_text_and_lists_choices(tmp_path, cli_env):
    text = akg(["run", "--help"], {**cli_env, "COLUMNS": "200"}, tmp_path).stdout
    assert "<bool>" not in text
    assert "--workflow <kernelgen|adaptive_search|evolve>" in text and "--dtype <fp32|fp16|bf16>" in text
    for option in ("--framework", "--backend", "--arch", "--dsl", "--temperature", "--max-tokens"):
        line = next(line for line in text.splitlines() if line.strip().startswith(option))
        assert re.search(rf"{option}( <\w+>)?\s+\S", line), line  # some help text after the option


def test_a_step_in_progress_has_a_live_spinner_saying_what_runs():
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with live_steps(console) as steps:
        assert steps.progress is not None  # a terminal gets a live display
        steps.on_event("step", {"node": "confirm_params"})
        task = steps.progress.tasks[0]
        assert task.description == NEXT_ACTIVITY["confirm_params"] and task.total is None  # spinner, no fake bar
        steps.on_event("custom", {"kind": "progress", "text": "evolve: 3/8 candidates", "fraction": 0.375})
        assert steps.progress.tasks[0].total == 1.0 and steps.progress.tasks[0].completed == 0.375
    with live_steps(Console(file=io.StringIO(), force_terminal=False)) as steps:
        assert steps.progress is None  # scripts and logs get plain lines


def test_search_progress_line_has_no_hand_made_bar():
    progress = Progress(workflow="evolve", status="running", round=2, candidates_done=3, budget=8, evaluated=3,
                        accepted=2, elapsed_s=12, eta_s=30, time_budget_s=600, updated_at=0)
    assert "[#" not in format_progress(progress) and "3/8 candidates" in format_progress(progress)


def test_registry_phase_is_the_step_running_not_the_last_gate(tmp_path):
    sessions = Sessions()
    sid = sessions.create(Settings(request=REQUEST, workdir=str(tmp_path / "w"), out_dir=str(tmp_path / "o"),
                                   auto_approve=True))
    seen = []

    def on_event(kind, payload):
        if kind == "custom" and payload.get("kind") == "verdict":
            seen.append(sessions.registry.get(sid)["phase"])

    sessions.advance(sid, settings=Settings(request=REQUEST, workdir=str(tmp_path / "w"),
                                            out_dir=str(tmp_path / "o"), auto_approve=True),
                     auto_approve=True, on_event=on_event)
    assert seen and set(seen) == {"kernelgen"}, seen


def test_sessions_table_keeps_words_and_times_whole(tmp_path, cli_env):
    request = "Generate a relu kernel, input (64, 512), fp32, on H100 with Triton please, quickly"
    akg(["run", request, "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    for columns in ("60", "100", "200"):
        listing = akg(["sessions"], {**cli_env, "COLUMNS": columns}, tmp_path)
        assert listing.returncode == 0, listing.stdout + listing.stderr
        text = listing.stdout
        words = re.findall(r"\S+", text)
        for word in request.split():
            assert word in words, (columns, word, text)
        assert re.search(r"\b\d\d-\d\d \d\d:\d\d\b", text), text


def test_first_run_does_not_say_cached_and_a_later_one_does(tmp_path, cli_env, akg_home):
    first = akg(["run", REQUEST, "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert "cached" not in first.stdout, first.stdout
    cache = akg_home / "env.json"
    data = json.loads(cache.read_text())
    data["detected_at"] = data["env"]["detected_at"] = 1_000_000_000.0  # detected long ago
    cache.write_text(json.dumps(data))
    later = akg(["run", REQUEST, "--workdir", str(tmp_path / "w")], cli_env, tmp_path)
    assert "(cached: detected 2001-09-" in later.stdout


def test_confirm_task_says_the_shapes_shown_are_shrunk(tmp_path, cli_env):
    sid = session_id_of(akg(["run", "relu (4096, 8192) fp32", "--workdir", str(tmp_path / "w")], cli_env, tmp_path))
    asked = akg(["resume", sid, "--answer", "yes"], cli_env, tmp_path).stdout
    assert "Use this task" in asked
    if "shrunk" in asked or not __import__("torch").cuda.is_available():  # CPU: the interpreter ran smaller sizes
        assert re.search(r"at sizes shrunk for the CPU interpreter \(BATCH 4096->\d+, DIM 8192->\d+", asked), asked
    else:
        assert "float32[4096, 8192]" in asked
