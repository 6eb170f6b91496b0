"""Peak memory of training between two reads, in MiB (mmengine's own ``memory`` is MiB too).

On CUDA, ``max_memory_allocated`` / ``max_memory_reserved``; on CPU, the process's peak resident set
size (Linux's ``VmHWM``, reset per read through ``/proc/self/clear_refs`` where the kernel allows
it, else sampled by a thread): mmengine logs no memory figure on CPU at all.
"""
import os
import re
import threading
from typing import Dict, Optional

import torch

MIB = 1024 * 1024


class PeakMemoryMeter:
    """Peak memory since the last ``reset()`` (or read with ``reset=True``), in MiB.

    ``read()`` returns ``{key: MiB}``: ``cuda_peak_allocated_mb`` and ``cuda_peak_reserved_mb``
    for a CUDA device, ``cpu_peak_rss_mb`` for the CPU (the whole process: weights, activations,
    gradients, optimizer state, libraries; dataloader worker processes are not included).
    ``source`` says how it is measured (``'cuda'``, ``'vmhwm'``, ``'sampled'`` or ``None`` where
    nothing can be measured).
    """

    source: Optional[str] = None

    def reset(self) -> None:
        raise NotImplementedError

    def read(self, reset: bool = True) -> Dict[str, int]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any background sampling."""


class CudaPeakMemory(PeakMemoryMeter):
    """``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` of one device."""

    source = 'cuda'

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def read(self, reset: bool = True) -> Dict[str, int]:
        values = {'cuda_peak_allocated_mb': torch.cuda.max_memory_allocated(self.device) // MIB,
                  'cuda_peak_reserved_mb': torch.cuda.max_memory_reserved(self.device) // MIB}
        if reset:
            self.reset()
        return values


class ProcessPeakMemory(PeakMemoryMeter):
    """Peak resident set size of this process (Linux ``/proc``).

    The kernel keeps the peak itself (``VmHWM`` in ``/proc/self/status``), and writing ``5`` to
    ``/proc/self/clear_refs`` resets it to the current size: exact, and free between reads. Where
    that write is not permitted, a background thread samples ``/proc/self/statm`` every
    ``sample_period`` seconds instead (peaks shorter than the period can be missed).
    """

    STATUS = '/proc/self/status'
    CLEAR_REFS = '/proc/self/clear_refs'
    STATM = '/proc/self/statm'

    def __init__(self, sample_period: float = 0.02) -> None:
        self.sample_period = sample_period
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0
        self._page_size = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096
        if not os.path.exists(self.STATUS):
            self.source = None
        elif self._clear_peak():
            self.source = 'vmhwm'
        else:
            self.source = 'sampled'
            self._peak = self._rss()
            self._thread = threading.Thread(target=self._sample, name='repl-mm-rss-sampler',
                                            daemon=True)
            self._thread.start()

    def _clear_peak(self) -> bool:
        try:
            with open(self.CLEAR_REFS, 'w') as file:
                file.write('5')
            return True
        except OSError:
            return False

    def _vmhwm(self) -> int:
        with open(self.STATUS) as file:
            match = re.search(r'^VmHWM:\s+(\d+)\s+kB', file.read(), re.MULTILINE)
        return int(match.group(1)) * 1024 if match else 0

    def _rss(self, statm: Optional[int] = None) -> int:
        if statm is None:
            with open(self.STATM, 'rb') as file:
                text = file.read()
        else:
            text = os.pread(statm, 128, 0)
        return int(text.split()[1]) * self._page_size

    def _sample(self) -> None:
        statm = os.open(self.STATM, os.O_RDONLY)  # kept open: one pread per sample
        try:
            while not self._stop.wait(self.sample_period):
                rss = self._rss(statm)
                with self._lock:
                    self._peak = max(self._peak, rss)
        finally:
            os.close(statm)

    def reset(self) -> None:
        if self.source == 'vmhwm':
            self._clear_peak()
        elif self.source == 'sampled':
            with self._lock:
                self._peak = self._rss()

    def read(self, reset: bool = True) -> Dict[str, int]:
        if self.source is None:
            return {}
        if self.source == 'vmhwm':
            peak = self._vmhwm()
        else:
            with self._lock:
                peak = self._peak = max(self._peak, self._rss())
        if reset:
            self.reset()
        return {'cpu_peak_rss_mb': peak // MIB}

    def current_mb(self) -> int:
        """The resident set size now."""
        return self._rss() // MIB if self.source else 0

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def peak_memory_meter(device: torch.device, sample_period: float = 0.02) -> PeakMemoryMeter:
    """The meter for the device a model trains on."""
    if torch.device(device).type == 'cuda':
        return CudaPeakMemory(torch.device(device))
    return ProcessPeakMemory(sample_period)
