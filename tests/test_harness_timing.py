"""The timing protocol's choice between the on-stream time and the time to the device synchronise,
with the device's measurements faked: that choice is arithmetic on them (a wrong one is the likely
cause of a main-stream relu timed 23 % slow on a busy host)."""
from __future__ import annotations

import pytest

from harness import timing


def _fake_device(monkeypatch, on_stream_ms: float, synced_ms: float, idle_overheads_ms: list[float]):
    """A device whose timed calls measure on_stream_ms on their stream and synced_ms to the
    synchronise, and whose idle synchronise takes each of idle_overheads_ms in turn when measured."""
    overheads = iter(idle_overheads_ms)
    monkeypatch.setattr(timing, "_warm_up", lambda fn, args: None)
    monkeypatch.setattr(timing, "launch_us", lambda fn, args, flush: 20.0)
    monkeypatch.setattr(timing, "sync_overhead_ms", lambda flush, calls=timing.TIMED_CALLS: next(overheads))
    spread = [0.999, 1.0, 1.001]
    monkeypatch.setattr(timing, "_samples_ms", lambda fn, args, flush, calls, after_each=None, before_each=None: (
        [on_stream_ms * spread[i % 3] for i in range(calls)], [synced_ms * spread[i % 3] for i in range(calls)]))
    return next(overheads)


def test_a_host_that_wakes_slower_while_timing_does_not_make_a_main_stream_kernel_look_slower(monkeypatch):
    # idle synchronise measured at 0.05 ms before timing, 0.09 ms once the host got busy
    before = _fake_device(monkeypatch, on_stream_ms=0.136, synced_ms=0.136 + 0.09, idle_overheads_ms=[0.05, 0.09])
    figures = timing.time_callable(lambda: None, (), flush=None, overhead_ms=before)
    assert not figures["off_stream"]
    assert figures["median_ms"] == pytest.approx(0.136)


def test_work_left_on_another_stream_is_timed_to_the_synchronise(monkeypatch):
    # the call only queues work on a side stream: its own stream is done at once
    before = _fake_device(monkeypatch, on_stream_ms=0.01, synced_ms=0.75, idle_overheads_ms=[0.05, 0.06])
    figures = timing.time_callable(lambda: None, (), flush=None, overhead_ms=before)
    assert figures["off_stream"]
    assert figures["median_ms"] == pytest.approx(0.75 - 0.06)
