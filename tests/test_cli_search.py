"""adaptive_search and evolve through the CLI: artefacts, background runs, kill -9 and resume."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

from checkpoints.registry import SessionRegistry
from tests.test_cli import akg, assert_one_line_error, session_id_of

REQUEST = "softmax (32, 256) fp32"


def test_adaptive_search_writes_its_artefacts_and_report(tmp_path, cli_env):
    result = akg(["run", REQUEST, "--workflow", "adaptive_search", "--option", "max_candidates=3",
                  "--option", "max_concurrent=2", "--option", "require_timings=false", "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
                 cli_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = next((tmp_path / "w").glob("op_softmax_*/output/adaptive_search_1"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["workflow"] == "adaptive_search"
    assert not (run_dir / "best_speedup.png").exists()  # CPU: nothing timed, no empty chart
    assert "-->" in (run_dir / "lineage.mmd").read_text()
    assert len(list((run_dir / "candidates").glob("cand_*.py"))) == 3
    report = (run_dir.parent.parent / "report.md").read_text()
    assert "adaptive_search run 1: success" in report and "```mermaid" in report
    assert "No speed was measured" in report  # on CPU; with timings the plot is embedded instead
    assert (tmp_path / "o" / "softmax_generated.py").exists()
    # Where each candidate was judged: the local pool's workers, listed by `status` too.
    assert summary["executor"] == "local" and summary["workers"]
    # (the seed was judged before the search, by the kernel it came from: no pool worker)
    judged = [c for c in summary["candidates"] if c["status"] in ("accepted", "failed") and c["parent_id"]]
    assert judged and all(c["worker"]["executor"] == "local" and c["worker"]["device"] == "cpu" for c in judged)
    status = akg(["status", session_id_of(result)], cli_env, tmp_path)
    assert "worker local" in status.stdout, status.stdout


def test_bad_search_option_is_a_one_line_error(tmp_path, cli_env):
    assert_one_line_error(akg(["run", REQUEST, "--workflow", "evolve", "--option", "islandz=3"], cli_env, tmp_path),
                          "islandz")


def test_background_evolve_killed_then_resumed_repeats_no_evaluation(tmp_path, cli_env, akg_home):
    started = akg(["run", REQUEST, "--workflow", "evolve", "--option", "max_candidates=6", "--option", "islands=2",
                   "--option", "require_timings=false",
                   "--background", "--yes", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
                  cli_env, tmp_path)
    assert started.returncode == 0 and "running in the background" in started.stdout
    sid = session_id_of(started)
    status = akg(["status", sid], cli_env, tmp_path)
    assert status.returncode == 0 and sid in status.stdout

    # Wait for the search to have evaluated a few candidates, then kill its worker outright.
    deadline = time.time() + 240
    progress = None
    while time.time() < deadline:
        found = list((tmp_path / "w").glob("op_softmax_*/output/evolve_1/progress.json"))
        if found and json.loads(found[0].read_text())["evaluated"] >= 2:
            progress = found[0]
            break
        time.sleep(0.5)
    assert progress is not None, "the background search made no progress"
    os.killpg(SessionRegistry(akg_home / "checkpoints.sqlite").get(sid)["pid"], signal.SIGKILL)
    time.sleep(1)
    stalled = akg(["status", sid], cli_env, tmp_path)
    assert "no worker" in stalled.stdout or "evolve" in stalled.stdout

    resumed = akg(["resume", sid], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    watched = akg(["watch", sid, "--timeout", "5"], cli_env, tmp_path)
    assert "done" in watched.stdout
    with sqlite3.connect(akg_home / "results.db") as db:
        rows = db.execute("select code_hash, count(*) from verdicts where workflow like 'evolve%' "
                          "group by code_hash").fetchall()
    assert rows and all(count == 1 for _, count in rows)  # no candidate was judged twice
