"""`python -m harness verify TASK CANDIDATE [--device cpu|cuda[:N]] [--json]`
Exit 0 when accepted, 1 when rejected, 2 on bad input."""
from __future__ import annotations

import argparse
import json
import sys

from harness.api import validate_task, verify
from harness.verdict import HarnessInputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness")
    commands = parser.add_subparsers(dest="command", required=True)
    verify_cmd = commands.add_parser("verify", help="judge a candidate ModelNew against a task's Model")
    verify_cmd.add_argument("task")
    verify_cmd.add_argument("candidate")
    verify_cmd.add_argument("--dsl", default="triton_cuda")
    verify_cmd.add_argument("--trials", type=int, default=5)
    verify_cmd.add_argument("--no-measure", action="store_true", help="skip GPU timing")
    verify_cmd.add_argument("--seed", type=int, default=None,
                            help="base seed of the judge's inputs (default: a fresh one, recorded in the verdict)")
    validate_cmd = commands.add_parser("validate", help="check that a task file is a usable reference")
    validate_cmd.add_argument("task")
    for command in (verify_cmd, validate_cmd):
        command.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        command.add_argument("--timeout", type=float, default=120.0)
        command.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            result = verify(args.task, args.candidate, device=args.device, dsl=args.dsl, trials=args.trials,
                            measure=not args.no_measure, timeout_s=args.timeout, seed=args.seed)
            passed, text = result.accepted, result.summary
        else:
            result = validate_task(args.task, device=args.device, timeout_s=args.timeout)
            passed = result.ok
            text = "task OK" if result.ok else "task problems:\n" + "\n".join(f"- {p}" for p in result.problems)
    except HarnessInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), sort_keys=True) if args.json else text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
