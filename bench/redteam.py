"""How many verdicts a judge gets wrong on candidates written to game it (and on their honest twins).

    python -m bench.redteam --device cpu            # the red-team set of tests/test_harness_redteam.py
    python -m bench.redteam --device cuda --timing  # plus the attacks that only show under timing

A verdict is right when a cheat is not accepted and an honest twin is. The harness under test is
whichever `harness` package is first on sys.path, so an older judge can be measured on the same
candidates (PYTHONPATH=path/to/old/checkout)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import harness

TESTS = Path(__file__).resolve().parent.parent / "tests"
TASKS, CANDIDATES = TESTS / "tasks_harness", TESTS / "candidates"
REDTEAM = CANDIDATES / "redteam"

# (task, candidate, honest?) — the classes of tests/test_harness_redteam.py
CASES = [
    ("relu", "redteam/tamper_patch_judge", False), ("relu", "redteam/tamper_write_verdict", False),
    ("relu", "redteam/tamper_unhook", False), ("relu", "redteam/tamper_pop_mode", False),
    ("relu", "redteam/relu_clamp_min", False), ("relu", "redteam/relu_one_element_kernel", False),
    ("softmax", "redteam/softmax_torch_decomposed", False), ("layernorm", "redteam/layernorm_torch_stats", False),
    ("relu", "redteam/relu_replays_seeds", False), ("relu", "redteam/relu_watched_only", False),
    ("relu", "redteam/relu_cached_after_n", False), ("relu", "redteam/relu_persistent_buffer", False),
    ("relu", "redteam/relu_background_zeroing", False), ("softmax", "redteam/softmax_no_max", False),
    ("layernorm", "redteam/layernorm_one_pass", False), ("relu", "redteam/relu_capped_grid", False),
    ("relu_nonneg", "redteam/relu_identity_copy", False),
    ("relu", "redteam/relu_drops_nan", False),
    ("relu", "relu_ok", True), ("softmax", "softmax_ok", True), ("layernorm", "redteam/layernorm_ok", True),
    ("relu_nonneg", "redteam/relu_clone_inplace", True),
]
TIMING_CASES = [("relu_large", "redteam/relu_late_cache", False), ("relu_large", "redteam/relu_forged_timing", False),
                ("relu_large", "relu_ok", True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timing", action="store_true", help="also the attacks that need GPU timing")
    args = parser.parse_args()
    cases = CASES + (TIMING_CASES if args.timing else [])
    wrong = 0
    print(f"| task | candidate | should be | verdict | right |\n|---|---|---|---|---|")
    for task, candidate, honest in cases:
        try:
            verdict = harness.verify(str(TASKS / f"{task}.py"), str(CANDIDATES / f"{candidate}.py"),
                                     device=args.device, measure=args.timing, timeout_s=120)
            status, accepted = verdict.status, verdict.accepted
        except Exception as error:  # an old judge may fail on a candidate outright
            status, accepted = f"error: {type(error).__name__}", False
        right = accepted == honest
        wrong += not right
        print(f"| {task} | {candidate} | {'accepted' if honest else 'rejected'} | {status} | "
              f"{'yes' if right else '**no**'} |", flush=True)
    print(json.dumps({"cases": len(cases), "wrong": wrong}))


if __name__ == "__main__":
    main()
