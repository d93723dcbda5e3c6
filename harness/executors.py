"""Where a search's candidates are evaluated: the local DevicePool or the Ray executor.

`--option executor=ray` or AKG_OP_EXECUTOR=ray picks Ray (RAY_ADDRESS: an existing cluster; without
it a local instance). The local pool lives for one round; a Ray pool (a cluster connection and its
actors, each with a warm fork server) is started once per process and kept until it exits.
"""
from __future__ import annotations

import atexit
import threading
from contextlib import contextmanager
from typing import Iterator

from harness.pool import DevicePool
from harness.verdict import HarnessInputError

EXECUTORS = ("local", "ray")
_shared: dict[str, object] = {}
_shared_lock = threading.Lock()


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise HarnessInputError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    return name


def shared_ray_pool():
    """The process's RayPool, started on first use."""
    from harness.ray_executor import RayPool

    with _shared_lock:
        if "ray" not in _shared:
            try:
                _shared["ray"] = RayPool()
                # Registered after Ray's own exit handler, so it runs first: the pool shuts down the
                # instance it started while Ray still works (Ray's handler leaves agents behind).
                atexit.register(_close_shared)
            except HarnessInputError:
                raise
            except Exception as error:  # no cluster at RAY_ADDRESS, no resources, ...
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise HarnessInputError(
                    f"the Ray executor could not start: {type(error).__name__}: {message}") from None
        return _shared["ray"]


@contextmanager
def evaluation_pool(executor: str = "local") -> Iterator:
    """A pool with submit(task_path, candidate_path, **verify_kwargs) -> Evaluation."""
    if check_executor(executor) == "ray":
        yield shared_ray_pool()
        return
    with DevicePool() as pool:
        yield pool


def _close_shared() -> None:
    for pool in _shared.values():
        try:
            pool.close()
        except Exception:  # Ray may have shut itself down first; its actors went with it
            pass
    _shared.clear()
