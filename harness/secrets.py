"""Keep secrets out of the judge and out of everything a verdict reaches.

Two lines of defence: workers start from an allow-listed environment (a candidate never sees an API
key in the first place), and every text that leaves the harness (summary, log tail, error) is passed
through `redact`, which removes the values of the orchestrator's own secret variables and anything
shaped like a key or a bearer token.
"""
from __future__ import annotations

import os
import re

# Variables a worker needs: where things are, how to build and run kernels, which GPU to use.
ALLOWED_ENV_NAMES = {
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "LD_LIBRARY_PATH", "CC", "CXX", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "XDG_CACHE_HOME", "VIRTUAL_ENV",
}
ALLOWED_ENV_PREFIXES = ("LC_", "TRITON_", "TORCH_", "TORCHINDUCTOR_", "PYTORCH_", "CUDA_", "NVIDIA_", "CUBLAS_",
                        "CUDNN_", "NCCL_")
# Never passed on, whatever the lists above say.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PROXY|^OPENAI_|^ANTHROPIC_"
                         r"|^AWS_|^AZURE_|^GOOGLE_|^HF_|^HUGGING|^LANGCHAIN_|^LANGSMITH_|^GITHUB_", re.IGNORECASE)

# Shapes of secrets in text: provider keys, bearer tokens, assignments of key-like names.
SECRET_PATTERNS = [
    re.compile(r"\b(?:sk|pk|rk|ghp|gho|ghs|hf|xox[abpr])[-_][A-Za-z0-9_\-]{12,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)\b([A-Z0-9_]*(?:api[_-]?key|token|secret|passw(?:or)?d)[A-Z0-9_]*)(\s*[=:]\s*)['\"]?[^\s'\"]{6,}"),
]
REDACTED = "[redacted]"
MIN_SECRET_VALUE_CHARS = 6


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed subset of `base` (default: this process's environment) a worker may see."""
    base = dict(os.environ if base is None else base)
    return {name: value for name, value in base.items()
            if (name in ALLOWED_ENV_NAMES or name.startswith(ALLOWED_ENV_PREFIXES)) and not is_secret_name(name)}


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of this process's secret-named variables, longest first (so no prefix is left behind)."""
    environ = os.environ if environ is None else environ
    values = {value for name, value in environ.items()
              if is_secret_name(name) and len(value) >= MIN_SECRET_VALUE_CHARS}
    return sorted(values, key=len, reverse=True)


def redact(text: str | None, environ: dict[str, str] | None = None) -> str | None:
    """`text` with every known secret value and every secret-shaped string replaced by [redacted]."""
    if not text:
        return text
    for value in secret_values(environ):
        text = text.replace(value, REDACTED)
    for pattern in SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact_tree(value, environ: dict[str, str] | None = None):
    """redact() applied to every string inside a JSON-like value (verdict dicts, states)."""
    if isinstance(value, str):
        return redact(value, environ)
    if isinstance(value, dict):
        return {key: redact_tree(item, environ) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_tree(item, environ) for item in value)
    return value
