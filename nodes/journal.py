"""A workflow run's files: each attempt's candidate, proposal and verdict, written as they happen.

The journal is what makes a run resumable after `kill -9`: on restart, the attempts on disk are
read back and the loop continues after the last completed step, so no model call or harness job
that finished is repeated.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from session_state import Attempt


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def candidate_path(run_dir: str, iteration: int) -> Path:
    return Path(run_dir) / f"iter_{iteration:02d}_candidate.py"


def write_proposal(run_dir: str, iteration: int, action: str, code: str | None, error: str | None,
                   meta: dict, usage: list[dict]) -> Path | None:
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = None
    if code is not None:
        path = candidate_path(run_dir, iteration)
        _atomic_write(path, code)
    record = {"iteration": iteration, "action": action, "error": error, "meta": meta, "usage": usage,
              "code_path": str(path) if path else None}
    _atomic_write(directory / f"iter_{iteration:02d}_proposal.json", json.dumps(record, indent=2))
    return path


def write_verdict(run_dir: str, iteration: int, verdict: dict) -> None:
    _atomic_write(Path(run_dir) / f"iter_{iteration:02d}_verdict.json", json.dumps(verdict, indent=2))


def error_signature(status: str, summary: str) -> str:
    """Same failure, whatever the figures: digits and hex are masked so 'max abs err 0.31' and
    'max abs err 0.29' count as a repeat."""
    first = summary.strip().splitlines()[0] if summary.strip() else ""
    return f"{status}: " + re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?(e[-+]?\d+)?", "#", first.lower())[:200]


def read_attempts(run_dir: str) -> list[Attempt]:
    """The attempts recorded on disk, in order; a proposal without verdict is `pending`."""
    directory = Path(run_dir)
    attempts = []
    for proposal_file in sorted(directory.glob("iter_*_proposal.json")):
        record = json.loads(proposal_file.read_text())
        k = record["iteration"]
        attempt = Attempt(iteration=k, action=record["action"], code_path=record["code_path"],
                          give_up=bool(record["meta"].get("give_up")))
        verdict_file = directory / f"iter_{k:02d}_verdict.json"
        if record["code_path"] is None:
            attempt.status, attempt.summary = "no_code", record["error"] or "the generator returned no code"
        elif verdict_file.exists():
            verdict = json.loads(verdict_file.read_text())
            attempt.status, attempt.accepted = verdict.get("status", "unknown"), bool(verdict.get("accepted"))
            attempt.summary = verdict.get("summary", "")
        if attempt.status != "pending" and not attempt.accepted:
            attempt.error_signature = error_signature(attempt.status, attempt.summary)
        attempts.append(attempt)
    return attempts


def proposal_meta_of(code_path: str) -> dict | None:
    """The generator's meta (e.g. tunables) of a journalled candidate, or None for other files."""
    match = re.fullmatch(r"iter_(\d+)_candidate\.py", Path(code_path).name)
    if not match:
        return None
    proposal = Path(code_path).with_name(f"iter_{int(match.group(1)):02d}_proposal.json")
    return json.loads(proposal.read_text()).get("meta", {}) if proposal.exists() else None


def read_verdict(run_dir: str, iteration: int) -> dict | None:
    path = Path(run_dir) / f"iter_{iteration:02d}_verdict.json"
    return json.loads(path.read_text()) if path.exists() else None


def read_usage(run_dir: str) -> list[dict]:
    usage = []
    for proposal_file in sorted(Path(run_dir).glob("iter_*_proposal.json")):
        usage.extend(json.loads(proposal_file.read_text()).get("usage", []))
    return usage
