"""Where a candidate's compiled Triton kernels are kept between its judgements.

Each candidate process runs in a private tmpfs, so a Triton cache there dies with the job and the
same source would be compiled again by every judgement of it (on a GPU, most of a small job's time).
Instead each distinct source gets a directory of its own, bind-mounted writable into its sandbox:
a candidate can only ever write the cache that its own source (byte for byte, under this Triton)
will read again, never another candidate's. (It can keep state across its own judgements through
it; each judgement still checks everything it does.) A directory that grows past MAX_BYTES after a
job is removed, so a candidate cannot fill the disk through it.
"""
from __future__ import annotations

import hashlib
import os
import shutil

KEPT_SOURCES = 256  # oldest directories beyond this many are removed
MAX_BYTES = 512 * 2**20  # a compiled kernel takes kilobytes; more than this is not a cache


def cache_root() -> str:
    return os.environ.get("AKG_OP_KERNEL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "akg-op", "triton-by-source")


def source_cache_dir(source: str, triton_version: str) -> str | None:
    """The cache directory of this source under this Triton, created; None where none can be made."""
    digest = hashlib.sha256(f"{triton_version}\0{source}".encode()).hexdigest()[:40]
    path = os.path.join(cache_root(), digest)
    try:
        os.makedirs(path, exist_ok=True)
        os.utime(path)
        _prune(os.path.dirname(path))
    except OSError:
        return None
    return path


def _prune(root: str) -> None:
    entries = [os.path.join(root, name) for name in os.listdir(root)]
    if len(entries) <= KEPT_SOURCES:
        return
    entries.sort(key=lambda p: os.stat(p).st_mtime)
    for stale in entries[:len(entries) - KEPT_SOURCES]:
        shutil.rmtree(stale, ignore_errors=True)


def trim(path: str | None) -> None:
    """After a job: remove the directory if the candidate put more in it than a cache holds."""
    if not path:
        return
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    if total > MAX_BYTES:
        shutil.rmtree(path, ignore_errors=True)
