"""A candidate's compiled kernels are kept per source: its sandbox can write its own cache directory
and nothing else, and a cache that grows past what a cache holds is removed."""
from __future__ import annotations

import os

import pytest

from harness import kernel_cache
from harness.candidate_worker import enter_sandbox


def _in_sandbox(private: str, cache_dir: str, elsewhere: str) -> dict:
    """Fork, enter the candidate sandbox in `private` with `cache_dir` as its Triton cache, try two writes."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        results = []
        try:
            notes = enter_sandbox(private, None, False, cache_dir)
            for path in (os.path.join(os.environ["TRITON_CACHE_DIR"], "kernel.cubin"), elsewhere):
                try:
                    with open(path, "w") as handle:
                        handle.write("compiled")
                    results.append("written")
                except OSError:
                    results.append("refused")
            results.append(";".join(notes))
        finally:
            os.write(write_end, "|".join(results).encode())
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as reader:
        cache_write, other_write, notes = reader.read().split("|")
    return {"cache": cache_write, "elsewhere": other_write, "notes": notes}


def test_the_sandbox_writes_its_own_kernel_cache_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_OP_KERNEL_CACHE", str(tmp_path / "cache"))
    cache_dir = kernel_cache.source_cache_dir("def kernel(): pass\n", "3.6.0")
    other_source = kernel_cache.source_cache_dir("def other_kernel(): pass\n", "3.6.0")
    (tmp_path / "private").mkdir()
    result = _in_sandbox(str(tmp_path / "private"), cache_dir, os.path.join(other_source, "planted.cubin"))
    if "filesystem writable" in result["notes"]:
        pytest.skip(f"no mount namespace here: {result['notes']}")
    assert result == {"cache": "written", "elsewhere": "refused", "notes": ""}
    assert os.listdir(cache_dir) == ["kernel.cubin"]  # kept for the next judgement of this source
    assert os.listdir(other_source) == []


def test_each_source_and_triton_version_has_its_own_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_OP_KERNEL_CACHE", str(tmp_path))
    a = kernel_cache.source_cache_dir("x = 1\n", "3.6.0")
    assert a == kernel_cache.source_cache_dir("x = 1\n", "3.6.0")
    assert a != kernel_cache.source_cache_dir("x = 2\n", "3.6.0")
    assert a != kernel_cache.source_cache_dir("x = 1\n", "3.9.0")


def test_oldest_sources_are_pruned_and_oversized_caches_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_OP_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "KEPT_SOURCES", 3)
    paths = []
    for i in range(5):
        paths.append(kernel_cache.source_cache_dir(f"v = {i}\n", "3.6.0"))
        os.utime(paths[-1], (i, i))  # distinct ages, oldest first
    assert len(os.listdir(tmp_path)) == 3 and os.path.isdir(paths[-1])
    monkeypatch.setattr(kernel_cache, "MAX_BYTES", 1000)
    with open(os.path.join(paths[-1], "big"), "wb") as handle:
        handle.write(b"\0" * 2000)
    kernel_cache.trim(paths[-1])
    assert not os.path.exists(paths[-1])
