"""framework/backend/arch/dsl: what we support, what we propose, and how answers edit them."""
from __future__ import annotations

from session_state import EnvInfo, Params
from nodes.errors import UserError

FRAMEWORKS = ("torch",)
# backend → (arches, dsls). "cpu" means: write Triton for CUDA, verify it in the interpreter.
SUPPORTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cuda": (("a100", "h100", "h200", "l40s", "rtx4090", "sm80", "sm90"), ("triton_cuda",)),
    "ascend": (("ascend910b1", "ascend910b2", "ascend910b3", "ascend910b4"), ("triton_ascend",)),
    "cpu": (("cpu",), ("triton_cuda",)),
}
PARAM_KEYS = ("framework", "backend", "arch", "dsl")


def supported_text() -> str:
    rows = [f"{b}: arch {'|'.join(a)}, dsl {'|'.join(d)}" for b, (a, d) in SUPPORTED.items()]
    return "framework torch; " + "; ".join(rows)


def check_params(p: Params) -> None:
    """Raise UserError listing what is supported when `p` is not a combination we support."""
    ok = (
        p.framework in FRAMEWORKS
        and p.backend in SUPPORTED
        and p.arch in SUPPORTED[p.backend][0]
        and p.dsl in SUPPORTED[p.backend][1]
    )
    if not ok:
        raise UserError(
            f"unsupported combination framework={p.framework} backend={p.backend} arch={p.arch} "
            f"dsl={p.dsl}; supported: {supported_text()}"
        )


def backend_of(arch: str) -> str:
    for backend, (arches, _) in SUPPORTED.items():
        if arch in arches:
            return backend
    return "cuda"


def propose_params(env: EnvInfo, request_arch: str | None, overrides: dict[str, str]) -> Params:
    """Detection, then the arch named in the request, then explicit flags (strongest)."""
    if env.device_kind == "cuda" and env.arch != "unknown":
        proposed = Params(backend="cuda", arch=env.arch, dsl="triton_cuda")
    elif env.device_kind == "npu":
        proposed = Params(backend="ascend", arch=env.arch, dsl="triton_ascend")
    else:
        proposed = Params(backend="cpu", arch="cpu", dsl="triton_cuda")
    if request_arch:
        backend = backend_of(request_arch)
        proposed = Params(backend=backend, arch=request_arch, dsl=SUPPORTED[backend][1][0])
    return apply_edits(proposed, overrides)


def apply_edits(params: Params, edits: dict[str, str]) -> Params:
    unknown = sorted(set(edits) - set(PARAM_KEYS))
    if unknown:
        raise UserError(f"unknown parameter {', '.join(unknown)}: use {', '.join(PARAM_KEYS)}")
    values = params.model_dump()
    values.update({k: v.strip().lower() for k, v in edits.items()})
    if "arch" in edits and "backend" not in edits:
        values["backend"] = backend_of(values["arch"])
        if "dsl" not in edits:
            values["dsl"] = SUPPORTED[values["backend"]][1][0]
    updated = Params(**values)
    check_params(updated)
    return updated


def parse_edits(text: str) -> dict[str, str]:
    """'arch=a100 dsl=triton_cuda' → {'arch': 'a100', 'dsl': 'triton_cuda'}."""
    edits = {}
    for token in text.replace(",", " ").split():
        key, sep, value = token.partition("=")
        if not sep or not value:
            raise UserError(f"'{token}' is not key=value; e.g. arch=a100 dsl=triton_cuda")
        edits[key.strip().lower()] = value
    return edits
