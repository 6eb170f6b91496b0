"""Wall-clock timing of training steps, robust to a noisy machine: the one timed-step loop of
``cost_report.measure_training`` (``tools/analysis/cost_report.py --measure``), the cost
benchmark's workers (``benchmarks/cost_benchmark.py``) and the block benchmarks
(``benchmarks/benchmark_blocks.py``, ``benchmarks/profile_backbone.py``).

``timed_steps`` runs ``warmup`` untimed steps, then ``iters`` timed ones, waiting for the device
(``sync``) before the first step and after each; it records every step's wall-clock and process
CPU seconds, warm-up included. What each caller reports from them:

* ``time_step``: median, min and max of the timed steps;
* ``measure_training``: their mean (``seconds_per_iter``) and min;
* the cost benchmark's worker: every step's seconds (its parent pools the medians of repeats).
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

import torch


def sync_all() -> None:
    """Wait for every CUDA kernel queued on the current device, when CUDA is available."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_sync(device: Union[str, torch.device]) -> Callable[[], None]:
    """What waits for ``device``: ``torch.cuda.synchronize(device)`` on CUDA, nothing else."""
    if torch.device(device).type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass
class StepTimes:
    """Seconds of every step, warm-up first: wall clock (``seconds``) and process CPU time
    (``cpu_seconds``; over ``seconds``, the number of cores the step kept busy)."""

    seconds: List[float]
    cpu_seconds: List[float]
    warmup: int

    @property
    def timed(self) -> List[float]:
        """Wall-clock seconds of the timed steps (after the warm-up)."""
        return self.seconds[self.warmup:]

    @property
    def median(self) -> float:
        return statistics.median(self.timed)

    @property
    def mean(self) -> float:
        return sum(self.timed) / len(self.timed)

    @property
    def min(self) -> float:
        return min(self.timed)

    @property
    def max(self) -> float:
        return max(self.timed)


def timed_steps(step: Callable[[], None], iters: int, warmup: int = 1,
                sync: Callable[[], None] = sync_all,
                before_timed: Optional[Callable[[], None]] = None,
                after_step: Optional[Callable[[int, float], None]] = None) -> StepTimes:
    """Run ``step`` ``warmup + iters`` times and time each run.

    Args:
        sync: waits for the device; called before the first step and after every step, inside
            the step's time (``sync_all``, or ``device_sync(device)``).
        before_timed: called once before the first timed step, outside any step's time (reset a
            peak memory meter there).
        after_step: called after every step, warm-up included, with its index and wall-clock
            seconds, outside any step's time (a progress bar, a log line).
    """
    seconds: List[float] = []
    cpu_seconds: List[float] = []
    sync()
    for index in range(warmup + iters):
        if index == warmup and before_timed is not None:
            before_timed()
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        sync()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        if after_step is not None:
            after_step(index, seconds[-1])
    return StepTimes(seconds, cpu_seconds, warmup)


def time_step(step: Callable[[], None], repeats: int = 5, warmup: int = 1) -> Dict[str, float]:
    """Run ``step`` ``warmup + repeats`` times; median, min and max seconds of the timed runs."""
    times = timed_steps(step, repeats, warmup, sync=sync_all)
    return dict(median=times.median, min=times.min, max=times.max)


def forward_backward(module: torch.nn.Module, *inputs: torch.Tensor) -> Callable[[], None]:
    """A step that runs ``module`` on ``inputs`` and back-propagates the outputs' square mean."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        out = module(*inputs)
        outs = out if isinstance(out, (tuple, list)) else (out, )
        sum(o.float().square().mean() for o in outs if torch.is_tensor(o)).backward()

    return step
