"""Detect the machine (GPU, versions) in a child process, cached in $AKG_OP_HOME/env.json.

Detection runs in a child so the orchestrator never initialises CUDA (harness workers need a
clean parent to fork from) and a broken driver cannot take the session down.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from checkpoints.home import env_cache_path

PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # akg-op's own modules: safe to run from

PROBE = r"""
import json, os
info = {"device_kind": "cpu", "device_name": "cpu", "device_count": 0, "capability": None}
try:
    import torch_npu  # noqa: F401  (Ascend)
    import torch
    if torch.npu.is_available():
        info.update(device_kind="npu", device_count=torch.npu.device_count(),
                    device_name=torch.npu.get_device_name(0))
except Exception:
    pass
if info["device_kind"] == "cpu":
    import torch
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device_kind="cuda", device_name=p.name, device_count=torch.cuda.device_count(),
                    capability=[p.major, p.minor])
print(json.dumps(info))
"""

ARCH_BY_NAME = (("h200", "h200"), ("h100", "h100"), ("h800", "h100"), ("a100", "a100"),
                ("a800", "a100"), ("l40s", "l40s"), ("4090", "rtx4090"), ("910b", "ascend910b4"))


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return ""


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": _version("torch"), "triton": _version("triton")}


def arch_of(device_name: str, capability: list[int] | None) -> str:
    lowered = device_name.lower()
    for needle, arch in ARCH_BY_NAME:
        if needle in lowered:
            return arch
    if capability:
        return f"sm{capability[0]}{capability[1]}"
    return "unknown"


def detect(timeout_s: float = 120.0) -> dict:
    """Fresh detection; never raises (a failing probe reads as a CPU-only machine)."""
    try:
        # `python -c` puts the current folder first on sys.path: a user's own `torch/` there must
        # not be what we probe. PYTHONSAFEPATH (3.11+) drops it; the neutral cwd covers 3.10.
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             timeout=timeout_s, cwd=PACKAGE_ROOT,
                             env={**os.environ, "TRITON_INTERPRET": "0", "PYTHONSAFEPATH": "1"})
        raw = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        raw = {"device_kind": "cpu", "device_name": "cpu", "device_count": 0, "capability": None}
    arch = "cpu" if raw["device_kind"] == "cpu" else arch_of(raw["device_name"], raw.get("capability"))
    v = versions()
    return {
        "device_kind": raw["device_kind"], "device_name": raw["device_name"], "arch": arch,
        "device_count": raw["device_count"], "torch_version": v["torch"],
        "triton_version": v["triton"], "python_version": v["python"],
        "triton_mode": "native" if raw["device_kind"] in ("cuda", "npu") else "interpreter",
    }


def cached_detect() -> tuple[dict, bool]:
    """(environment, from_cache). The cache is valid only for the versions it was made with."""
    path = env_cache_path()
    current = versions()
    try:
        cached = json.loads(path.read_text())
        if cached.get("versions") == current:
            return {**cached["env"], "detected_at": cached.get("detected_at", 0.0)}, True
    except (OSError, ValueError, KeyError):
        pass
    env = detect()
    env["detected_at"] = time.time()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"versions": current, "env": env, "detected_at": env["detected_at"]}, indent=2))
    os.replace(tmp, path)
    return env, False


def detection_age_s(env: dict) -> float:
    """Seconds since `env` was detected (a cache written before this field existed: very old)."""
    return time.time() - float(env.get("detected_at") or 0.0)
