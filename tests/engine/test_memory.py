"""Tests of repl_mm.engine.memory: the process's peak memory, reset per read."""
import mmap
import time

import numpy as np

import repl_mm  # noqa: F401
from repl_mm.engine.memory import ProcessPeakMemory

MIB = 1024 * 1024


class FreshPages:
    """``mib`` MiB of new anonymous pages, touched (so resident), unmapped on ``release()``.

    ``mmap`` rather than ``np.ones``: after earlier tests freed large arrays, malloc may serve a
    big request from heap memory that is still resident, and the RSS would not grow."""

    def __init__(self, mib: int) -> None:
        self.map = mmap.mmap(-1, mib * MIB)
        np.frombuffer(self.map, dtype=np.uint8)[:] = 1

    def release(self) -> None:
        self.map.close()


def _peak_after_allocating(meter: ProcessPeakMemory, mib: int) -> int:
    FreshPages(mib).release()
    return meter.read()['cpu_peak_rss_mb']


def test_cpu_peak_memory_is_reset_per_read():
    meter = ProcessPeakMemory()
    assert meter.source == 'vmhwm'
    base = meter.current_mb()
    assert _peak_after_allocating(meter, 300) >= base + 290
    assert meter.read()['cpu_peak_rss_mb'] < base + 100  # the earlier peak is gone


def test_cpu_peak_memory_falls_back_to_sampling(monkeypatch):
    monkeypatch.setattr(ProcessPeakMemory, 'CLEAR_REFS', '/nonexistent/clear_refs')
    meter = ProcessPeakMemory(sample_period=0.001)
    try:
        assert meter.source == 'sampled'
        base = meter.current_mb()
        block = FreshPages(300)
        time.sleep(0.05)  # a few sampling periods while the block is resident
        block.release()
        assert meter.read()['cpu_peak_rss_mb'] >= base + 290
        assert meter.read()['cpu_peak_rss_mb'] < base + 100
    finally:
        meter.close()
