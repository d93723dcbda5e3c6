"""Why a candidate is rejected: one status and one sentence."""
from __future__ import annotations

CUDA_FAULT_MARKERS = ("illegal memory access", "device-side assert", "misaligned address",
                      "unspecified launch failure", "illegal instruction", "CUDA error")


class Rejection(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 400 else text[:400] + "…"


def classify_exception(error: BaseException, what: str) -> Rejection:
    """Turn an exception raised by candidate code into a rejection with the right status."""
    text = error_text(error)
    name = type(error).__name__
    module = type(error).__module__ or ""
    if isinstance(error, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower() \
            or "can't allocate memory" in text:
        return Rejection("oom", f"{what} ran out of memory: {text}")
    if "nvmlInit" in text and "CUDACachingAllocator" in text:
        # torch's allocator asks NVML who holds the memory only when an allocation fails; inside
        # the sandbox that query itself fails, so this assertion is how an out-of-memory shows
        return Rejection("oom", f"{what} ran out of device memory (torch's allocator failed: {text[:160]})")
    if "CompilationError" in name or module.startswith("triton.compiler") or isinstance(error, SyntaxError):
        return Rejection("compile_error", f"{what} failed to compile: {text}")
    if isinstance(error, SystemExit):
        return Rejection("runtime_error", f"{what} called sys.exit({error.code!r})")
    return Rejection("runtime_error", f"{what} raised {text}")


def is_cuda_fault(reason: str) -> bool:
    return any(marker in reason for marker in CUDA_FAULT_MARKERS)
