"""python -m codegen TASK.py [--tunables JSON] [-o OUT.py] [--json] [--target cuda]"""
from __future__ import annotations

import argparse
import json
import sys

from . import lower


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codegen", description="Lower a KernelBench task to Triton.")
    p.add_argument("task")
    p.add_argument("--tunables", default=None, help="JSON object of tunable overrides")
    p.add_argument("-o", "--out", default=None, help="write the generated file here")
    p.add_argument("--json", action="store_true", help="print the Lowering as JSON")
    p.add_argument("--target", default="cuda")
    a = p.parse_args(argv)
    with open(a.task) as f:
        src = f.read()
    res = lower(src, tunables=json.loads(a.tunables) if a.tunables else None, target=a.target)
    if a.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
    elif res.ok and not a.out:
        print(res.code)
    if res.ok and a.out:
        with open(a.out, "w") as f:
            f.write(res.code)
    if not res.ok:
        print(res.reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
