"""The embedded generator's tunable search space, its defaults, and a neighbour move for searches.

Keys are "<kernel family>.<knob>". Every generated file carries the values it was built with as
module-level constants, so a person can also edit them by hand.
"""
from __future__ import annotations

import random

SPACE: dict[str, list] = {
    # pointwise kernels: elements per program, warps
    "pointwise.BLOCK": [256, 512, 1024, 2048, 4096, 8192],
    "pointwise.num_warps": [2, 4, 8, 16],
    # row kernels (reductions, normalisations, scans)
    "reduce.strategy": ["auto", "persistent", "looped"],  # whole rows in registers, or a column loop
    "reduce.persistent_max": [2048, 4096, 8192, 16384, 32768],  # "auto": longest row kept whole
    "reduce.TILE": [1024, 2048, 4096, 8192, 16384],  # elements per persistent row block / strided loop step
    "reduce.BLOCK_N": [256, 512, 1024, 2048, 4096, 8192],  # column block of a looped reduction
    "reduce.num_warps": [0, 1, 2, 4, 8, 16, 32],  # 0: picked from the block size
    "reduce.strided_BLOCK_M": [16, 32, 64, 128, 256],  # rows per program, reduced dims not innermost
    "reduce.split_programs": [0, 256, 512, 1024, 2048],  # few long rows: programs sharing them (0: no split)
    "num_stages": [1, 2, 3, 4],
}

DEFAULTS: dict[str, object] = {
    "pointwise.BLOCK": 1024,
    "pointwise.num_warps": 4,
    "reduce.strategy": "auto",
    "reduce.persistent_max": 16384,
    "reduce.TILE": 4096,
    "reduce.BLOCK_N": 2048,
    "reduce.num_warps": 0,
    "reduce.strided_BLOCK_M": 64,
    "reduce.split_programs": 1024,
    "num_stages": 1,
}

TARGET_DEFAULTS: dict[str, dict] = {
    "cuda": {},
    "cpu": {"reduce.persistent_max": 8192},
}


def resolve(tunables: dict | None, target: str = "cuda") -> dict:
    """Defaults for `target`, overridden by `tunables` (unknown keys are an error)."""
    out = dict(DEFAULTS)
    out.update(TARGET_DEFAULTS.get(target, {}))
    for key, value in (tunables or {}).items():
        if key not in SPACE:
            raise KeyError(f"unknown tunable {key!r} (known: {', '.join(SPACE)})")
        out[key] = value
    return out


def neighbour(space: dict, tunables: dict, seed: int) -> dict:
    """A point next to `tunables`: one knob moved one step along its list (wrapping at the ends)."""
    rng = random.Random(seed)
    keys = sorted(k for k, v in space.items() if len(v) > 1)
    out = dict(tunables)
    if not keys:
        return out
    key = rng.choice(keys)
    values = space[key]
    current = out.get(key, values[0])
    i = values.index(current) if current in values else 0
    step = rng.choice([-1, 1])
    j = i + step
    if j < 0 or j >= len(values):
        j = i - step
    out[key] = values[j]
    return out
