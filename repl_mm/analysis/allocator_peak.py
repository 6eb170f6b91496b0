"""The measured peak of tensor memory during one training step, from the allocator itself.

CPU: ``torch.profiler.profile(profile_memory=True)`` records every allocation and free of torch's
CPU allocator ([memory] events, bytes + and -). Started before the model and the optimizer are
built, the running sum of those events is the absolute tensor memory of everything the measurement
made (weights, optimizer state, batch, activations); a profiler opened around one step alone would
see only what the step allocates, and frees of memory allocated before it (it does not report
those). CUDA: ``torch.cuda.max_memory_allocated`` since the step began, less what was allocated
before the model was built.

Use::

    with AllocatorPeak(device) as measured:   # before the model is built
        model, optimizer = ...
        with measured.step():
            train_step()
    measured.result()  # {'peak_bytes', 'step_start_bytes', 'source'}
"""
import contextlib
from typing import Any, Dict, Iterator

import torch

STEP_MARK = 'repl_mm.measured_step'


class AllocatorPeak:
    """Measured peak of one step's tensor memory on ``device`` (see the module docstring)."""

    def __init__(self, device) -> None:
        self.device = torch.device(device)
        self._profiler = None
        self._baseline = 0
        self._cuda: Dict[str, int] = {}

    def __enter__(self) -> 'AllocatorPeak':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile
            self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                                     record_shapes=True)
            self._profiler.__enter__()
        return self

    def __exit__(self, *args) -> None:
        if self._profiler is not None:
            self._profiler.__exit__(*args)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """The window whose peak is measured."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self._cuda = dict(peak=torch.cuda.max_memory_allocated(self.device), start=start)
        else:
            with torch.profiler.record_function(STEP_MARK):
                yield

    def result(self) -> Dict[str, Any]:
        """``peak_bytes`` (the step's peak), ``step_start_bytes`` (live when the step began),
        both counted from the start of the measurement, ``source``, and on the CPU
        ``peak_operator`` (the operator running at the peak), ``peak_operator_shapes`` (its
        inputs' shapes) and ``peak_operator_bytes`` (what it had allocated itself by then)."""
        if self.device.type == 'cuda':
            return dict(peak_bytes=self._cuda['peak'] - self._baseline,
                        step_start_bytes=self._cuda['start'] - self._baseline,
                        source='torch.cuda.max_memory_allocated')
        events = self._profiler.profiler.kineto_results.events()
        marks = [e for e in events if e.name() == STEP_MARK]
        if not marks:
            raise RuntimeError('AllocatorPeak.result(): no step() was measured.')
        start, end = marks[-1].start_ns(), marks[-1].end_ns()
        cpu = torch._C._autograd.DeviceType.CPU
        memory = sorted((e.start_ns(), e.nbytes()) for e in events
                        if e.name() == '[memory]' and e.device_type() == cpu)
        live, at_start, peak, peak_time, timeline = 0, None, 0, start, []
        for time, nbytes in memory:
            if time >= start and at_start is None:
                at_start = peak = live
            live += nbytes
            timeline.append((time, live))
            if start <= time <= end and live > peak:
                peak, peak_time = live, time
        if at_start is None:
            at_start = peak = live
        return dict(peak_bytes=peak, step_start_bytes=at_start,
                    source='torch.profiler allocator events (profile_memory=True)',
                    **self._operator_at(events, peak_time, peak, timeline))

    @staticmethod
    def _operator_at(events, time: int, peak: int, timeline) -> Dict[str, Any]:
        """The innermost operator running at the peak, and what it had allocated itself by
        then (its outputs so far and its temporaries: workspaces, reordered copies), which no
        accounting between operators sees."""
        running = [e for e in events if e.name() not in ('[memory]', STEP_MARK)
                   and e.start_ns() <= time <= e.end_ns()]
        if not running:
            return dict(peak_operator=None, peak_operator_bytes=0, peak_operator_shapes=None)
        innermost = max(running, key=lambda e: e.start_ns())
        before = 0
        for at, live in timeline:
            if at >= innermost.start_ns():
                break
            before = live
        return dict(peak_operator=innermost.name(), peak_operator_bytes=peak - before,
                    peak_operator_shapes=[list(shape) for shape in innermost.shapes()])
