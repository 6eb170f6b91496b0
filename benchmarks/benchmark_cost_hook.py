"""Measure what TrainingCostHook adds to a training step; prints numbers, asserts nothing.

    python benchmarks/benchmark_cost_hook.py CONFIG [--iters 100] [--rounds 3]
        [--interval N] [--shape H W] [--batch-size B] [--ledger]

Trains the config's model on a synthetic batch (repl_mm.analysis.synthetic.synthetic_runner) in this
process, on the device mmengine's Runner picks (CUDA where available):

C. once, with the hook logging every iteration, its calls timed: the cost of one log line;
then ``--rounds`` times, in turn (so that a machine shared with other jobs affects all alike):
A. without the hook: the baseline step time;
B. with the hook at the default interval (the config's LoggerHook interval), its calls timed;
D. as B, with the resident-set sampling thread forced on (the fallback where VmHWM cannot be
   reset; its cost falls outside the hook's calls, so it only shows in the step time).

E. with ``--ledger``: as B with ``ledger_interval=2``: every other step runs inside the memory
   ledger, so ledgered and plain steps alternate in one run (a busy machine slows both alike).

The overhead is the cost of one log line spread over ``interval`` steps plus the hook's check at
every other step, over the step time (C, B and A), and the hook's measured share of the training
time (B). B / A and D / A compare wall clock (median step of each run, median over rounds of the
ratios): noisier, as they include everything else the machine does. E is the median ledgered
step over the median other step of the same runs: what one ledgered step costs against a plain
one; at ``ledger_interval=N`` the ledger adds (E - 1) / N of the training time.
"""
import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from unittest import mock

from mmengine.config import Config
from mmengine.hooks import Hook

import repl_mm  # noqa: F401  (registers the RepL classes and TrainingCostHook)
from repl_mm.analysis.synthetic import input_shape, synthetic_runner
from repl_mm.engine.memory import ProcessPeakMemory
from repl_mm.engine.cli import run_tool
from repl_mm.engine.hooks import TrainingCostHook


class TimedCostHook(TrainingCostHook):
    """TrainingCostHook that adds up the time spent in its calls."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = {'log line': 0.0, 'other iteration': 0.0}
        self.calls = {'log line': 0, 'other iteration': 0}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        start = time.perf_counter()
        logs = self._due(runner, batch_idx)
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        kind = 'log line' if logs else 'other iteration'
        self.seconds[kind] += time.perf_counter() - start
        self.calls[kind] += 1


class StepClock(Hook):
    """Times every training step, from before_train_iter to the end of after_train_iter."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.step_times = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.step_times.append(time.perf_counter() - self.start)


def train(cfg, iters: int, interval: int, hook, args, clock=None) -> float:
    """Median seconds per step, leaving out the first fifth (at most 5 steps) as warm-up."""
    clock = clock or StepClock()
    with tempfile.TemporaryDirectory() as work_dir, open(os.devnull, 'w') as devnull, \
            contextlib.redirect_stdout(devnull):
        runner = synthetic_runner(cfg, work_dir, iters, shape=args.shape,
                                  batch_size=args.batch_size, log_interval=interval,
                                  custom_hooks=[clock] + ([hook] if hook else []))
        runner.train()
        device = next(runner.model.parameters()).device
    print(f'  {len(clock.step_times)} steps on {device}', file=sys.stderr)
    return statistics.median(clock.step_times[min(5, iters // 5):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=100, help='steps per run')
    parser.add_argument('--rounds', type=int, default=3, help='rounds of runs A, B, D')
    parser.add_argument('--interval', type=int,
                        help="log interval; default: the config's LoggerHook interval")
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--ledger', action='store_true',
                        help='also run every other step inside the memory ledger (E)')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    interval = args.interval or cfg.get('default_hooks', {}).get('logger', {}).get('interval', 50)
    shape = tuple(args.shape or input_shape(cfg))
    print(f'{args.config}: input {shape}, {args.iters} steps per run, interval {interval}',
          file=sys.stderr)

    every = TimedCostHook()
    train(cfg, max(20, args.iters // 4), 1, every, args)
    timed = TimedCostHook()
    base, with_hook, sampled, ledger_clocks = [], [], [], []
    for _ in range(args.rounds):
        base.append(train(cfg, args.iters, interval, None, args))
        with_hook.append(train(cfg, args.iters, interval, timed, args))
        with mock.patch.object(ProcessPeakMemory, 'CLEAR_REFS', '/nonexistent/clear_refs'):
            sampled.append(train(cfg, args.iters, interval, TrainingCostHook(), args))
        if args.ledger:
            ledger_clocks.append(StepClock())
            train(cfg, args.iters, interval, TrainingCostHook(ledger_interval=2), args,
                  ledger_clocks[-1])

    step = statistics.median(base)
    per_line = every.seconds['log line'] / every.calls['log line']
    per_other = timed.seconds['other iteration'] / max(timed.calls['other iteration'], 1)
    hook_share = sum(timed.seconds.values()) / (sum(with_hook) * args.iters)

    def ratio(runs):
        return statistics.median(r / b for r, b in zip(runs, base)) - 1

    print(f'step time without the hook (A, median):    {step * 1e3:9.2f} ms')
    print(f'hook time per log line (C):                {per_line * 1e3:9.3f} ms')
    print(f'hook time per other step (B):              {per_other * 1e6:9.2f} us')
    print(f'overhead at interval {interval:<4d} (C, B / A):    '
          f'{(per_line / interval + per_other) / step:9.3%}')
    print(f'hook share of training time (B, measured): {hook_share:9.3%}')
    print(f'wall clock, with the hook (B / A):         {ratio(with_hook):+9.2%}')
    print(f'wall clock, sampling fallback (D / A):     {ratio(sampled):+9.2%}')
    if ledger_clocks:  # iterations 2, 4, ... (indices 1, 3, ...) ran inside the ledger
        skip = min(5, args.iters // 5)  # warm-up, as in train()
        steps = [(i % 2 == 1, t) for clock in ledger_clocks
                 for i, t in enumerate(clock.step_times) if i >= skip]
        ledgered = statistics.median(t for inside, t in steps if inside)
        other = statistics.median(t for inside, t in steps if not inside)
        print(f'ledgered step / other step (E, medians):   {ledgered * 1e3:9.2f} / '
              f'{other * 1e3:.2f} ms = {ledgered / other:.2f}x ({len(steps)} steps)')


if __name__ == '__main__':
    run_tool(main)
