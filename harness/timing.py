"""GPU timing, the same protocol for candidate, eager reference and torch.compile(reference).

Per timed call: flush L2 (write a buffer larger than it), record the start event, call, synchronise
the whole device (so work the callable left on side streams is counted), record the end event.
The cost of that synchronise + record is measured on an empty callable and subtracted, so short
kernels are not swamped by it.
"""
from __future__ import annotations

import statistics
import time

import torch

TIMED_CALLS = 100
WARMUP_S = 0.05
MIN_FLUSH_BYTES = 256 << 20


class L2Flusher:
    def __init__(self, device="cuda"):
        l2_bytes = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or (50 << 20)
        self.buffer = torch.empty(max(2 * l2_bytes, MIN_FLUSH_BYTES) // 4, dtype=torch.int32, device=device)

    def __call__(self) -> None:
        self.buffer.zero_()


def _samples_ms(fn, args, flush: L2Flusher, calls: int) -> list[float]:
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
    for start, end in zip(starts, ends):
        flush()
        start.record()
        fn(*args)
        torch.cuda.synchronize()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in zip(starts, ends)]


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, median, q3


def _warm_up(fn, args) -> None:
    fn(*args)
    torch.cuda.synchronize()
    deadline = time.perf_counter() + WARMUP_S
    while time.perf_counter() < deadline:
        fn(*args)
    torch.cuda.synchronize()


def sync_overhead_ms(flush: L2Flusher, calls: int = TIMED_CALLS) -> float:
    return _quartiles(_samples_ms(lambda: None, (), flush, calls))[1]


def time_callable(fn, args, *, flush: L2Flusher, overhead_ms: float, calls: int = TIMED_CALLS) -> dict:
    """Median and IQR of `calls` timed calls, in ms, the synchronise overhead already subtracted."""
    _warm_up(fn, args)
    q1, median, q3 = _quartiles(_samples_ms(fn, args, flush, calls))
    return {"median_ms": max(median - overhead_ms, 0.0), "iqr_ms": q3 - q1, "calls": calls,
            "raw_median_ms": median, "sync_overhead_ms": overhead_ms}
