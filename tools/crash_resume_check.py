"""Check that a run killed after a checkpoint and resumed ends exactly as an uninterrupted run.

    python tools/crash_resume_check.py CONFIG --checkpoint iter_4.pth --work-dir DIR \
        [--seed 0] [--atol 0] [--cfg-options ...]

Three trainings through tools/train.py, one after another:

1. ``DIR/uninterrupted``: the config as it is, to its end;
2. ``DIR/resumed``: the same, killed with SIGKILL (the whole process group, data workers
   included) as soon as ``last_checkpoint`` names ``--checkpoint`` (mmengine writes that file
   after the checkpoint is complete), as a crash or a preemption would;
3. ``DIR/resumed`` again with ``--resume``: resumes from the latest complete checkpoint, to the end.

Then it compares the two final checkpoints (weights, RepL coefficients, BN buffers, optimizer
state, parameter schedulers, iteration, random generator states) and the loss curves after the
resume point (``vis_data/scalars.json``), prints a report and exits with 0 if everything agrees
within ``--atol`` (default 0: bitwise), 1 if not, 2 if a training fails.

Every training gets ``randomness.seed=SEED randomness.deterministic=True`` and logs every
iteration's own loss (``default_hooks.logger.interval=1 log_processor.window_size=1``). Without
``RNGStateHook`` in the config's ``custom_hooks``, random numbers drawn after the resume differ;
the report says so.
"""
import argparse
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from repl_core import ReplError
from repl_mm.engine import trusted_checkpoint_globals
from repl_mm.engine.cli import read_config, run_tool
from repl_mm.engine.checkpoint_files import last_complete_checkpoint

TOOLS = Path(__file__).resolve().parent
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', required=True,
                        help='file name of the checkpoint after which the run is killed, '
                        'e.g. iter_4.pth')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--atol', type=float, default=0.0,
                        help='largest absolute difference accepted (default 0: bitwise equal)')
    parser.add_argument('--timeout', type=float, default=1800, help='seconds per training')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to tools/train.py')
    return parser.parse_args(argv)


def _train_command(args: argparse.Namespace, work_dir: str, resume: bool) -> List[str]:
    options = [f'randomness.seed={args.seed}', 'randomness.deterministic=True',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               *args.cfg_options]
    return [sys.executable, str(TOOLS / 'train.py'), args.config, '--work-dir', work_dir,
            *(['--resume'] if resume else []), '--cfg-options', *options]


def _train(command: List[str], log: str, timeout: float) -> None:
    with open(log, 'w') as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode != 0:
        raise ReplError(f'training failed (exit code {result.returncode}); see {log}:\n'
                        f'{_tail(log)}')


def _tail(log: str, lines: int = 15) -> str:
    with open(log, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def _number(name: str) -> int:
    match = re.search(r'(\d+)', osp.basename(name))
    return int(match.group(1)) if match else -1


def train_and_kill(command: List[str], work_dir: str, checkpoint: str, log: str,
                   timeout: float) -> str:
    """Start a training, SIGKILL its process group once ``checkpoint`` (or a later one) is
    complete; return the last complete checkpoint at that moment."""
    target = _number(checkpoint)
    with open(log, 'w') as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                last = last_complete_checkpoint(work_dir)
                if last is not None and (osp.basename(last) == checkpoint
                                         or _number(last) > target):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return last
                if process.poll() is not None:
                    raise ReplError(
                        f'the training to be killed ended by itself (exit code '
                        f'{process.returncode}) before {checkpoint} was written; choose an '
                        f'earlier --checkpoint. See {log}:\n{_tail(log)}')
                if time.monotonic() > deadline:
                    raise ReplError(f'{checkpoint} did not appear within {timeout:.0f} s.')
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _leaves(value: Any, path: str = '') -> Iterator[Tuple[str, Any]]:
    if isinstance(value, dict):
        for key in value:
            yield from _leaves(value[key], f'{path}.{key}' if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f'{path}[{i}]')
    else:
        yield path, value


def difference(a: Any, b: Any) -> float:
    """Largest absolute difference of two leaves; ``inf`` if they cannot be compared."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return float('inf')
        if torch.equal(a, b):
            return 0.0
        if not a.is_floating_point():
            return float('inf')
        return (a.double() - b.double()).abs().nan_to_num(float('inf')).max().item()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return 0.0 if a == b else abs(float(a) - float(b))
    return 0.0 if type(a) is type(b) and a == b else float('inf')


class Group:
    """Differences of one group of compared values (e.g. the optimizer state)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.worst = 0.0
        self.worst_at = ''

    def add(self, path: str, diff: float) -> None:
        self.count += 1
        if diff > self.worst:
            self.worst, self.worst_at = diff, path


def compare_checkpoints(a: Dict[str, Any], b: Dict[str, Any]) -> List[Group]:
    groups = {name: Group(name) for name in (
        'weights', 'RepL coefficients', 'BN buffers', 'optimizer state', 'param schedulers',
        'iteration / epoch', 'RNG states')}

    def add(group: str, first: Any, second: Any, what: str) -> None:
        ours, theirs = dict(_leaves(first)), dict(_leaves(second))
        for path in sorted(set(ours) | set(theirs)):
            if path not in ours or path not in theirs:
                groups[group].add(f'{what}{path} (only in one)', float('inf'))
            else:
                groups[group].add(f'{what}{path}', difference(ours[path], theirs[path]))

    state_a, state_b = a['state_dict'], b['state_dict']
    for key in sorted(set(state_a) | set(state_b)):
        group = ('RepL coefficients' if '.repl_coefficients.' in key else
                 'BN buffers' if key.endswith(BUFFERS) else 'weights')
        add(group, {key: state_a.get(key)}, {key: state_b.get(key)}, '')
    add('optimizer state', a.get('optimizer'), b.get('optimizer'), 'optimizer.')
    add('param schedulers', a.get('param_schedulers'), b.get('param_schedulers'),
        'param_schedulers')
    add('iteration / epoch', {k: a['meta'].get(k) for k in ('iter', 'epoch')},
        {k: b['meta'].get(k) for k in ('iter', 'epoch')}, 'meta.')
    add('RNG states', a.get('rng_states'), b.get('rng_states'), 'rng_states.')
    return [g for g in groups.values() if g.count]


def loss_curve(work_dir: str, after: int) -> Dict[Tuple[int, str], float]:
    """``{(iteration, key): value}`` of the losses and lr logged after iteration ``after`` by
    the latest run in ``work_dir``."""
    runs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not runs:
        raise ReplError(f'no vis_data/scalars.json under {work_dir}: the config needs a '
                        f'visualizer with LocalVisBackend to compare loss curves.')
    curve = {}
    for line in runs[-1].read_text().splitlines():
        record = json.loads(line)
        step = record.get('step', record.get('iter'))
        if 'loss' not in record or step is None or step <= after:
            continue
        for key, value in record.items():
            if 'loss' in key or key == 'lr':
                curve[(step, key)] = value
    return curve


def compare_curves(a: Dict, b: Dict) -> Group:
    group = Group('loss curve')
    for point in sorted(set(a) | set(b)):
        diff = abs(a[point] - b[point]) if point in a and point in b else float('inf')
        group.add(f'iteration {point[0]} {point[1]}', diff)
    return group


def _load(path: str) -> Dict[str, Any]:
    with trusted_checkpoint_globals():
        return torch.load(path, map_location='cpu')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    has_hook = any(isinstance(h, dict) and h.get('type') == 'RNGStateHook'
                   for h in read_config(args.config).get('custom_hooks', []))
    uninterrupted = osp.join(args.work_dir, 'uninterrupted')
    resumed = osp.join(args.work_dir, 'resumed')
    for folder in (uninterrupted, resumed):
        if osp.exists(folder) and os.listdir(folder):
            raise ReplError(f'{folder} is not empty; give an empty --work-dir.')
        os.makedirs(folder, exist_ok=True)

    started = time.monotonic()
    _train(_train_command(args, uninterrupted, False), osp.join(args.work_dir,
                                                                'uninterrupted.log'),
           args.timeout)
    killed_at = train_and_kill(_train_command(args, resumed, False), resumed, args.checkpoint,
                               osp.join(args.work_dir, 'crashed.log'), args.timeout)
    resume_point = _load(killed_at)['meta']['iter']
    _train(_train_command(args, resumed, True), osp.join(args.work_dir, 'resumed.log'),
           args.timeout)
    final_a = last_complete_checkpoint(uninterrupted)
    final_b = last_complete_checkpoint(resumed)
    if final_a is None or final_b is None:
        raise ReplError('a training ended without a checkpoint; the config needs a '
                        'CheckpointHook (save_last=True).')
    groups = compare_checkpoints(_load(final_a), _load(final_b))
    groups.append(compare_curves(loss_curve(uninterrupted, resume_point),
                                 loss_curve(resumed, resume_point)))

    equal = all(g.worst <= args.atol for g in groups)
    print(f'crash/resume check of {args.config} ({time.monotonic() - started:.0f} s)')
    print(f'  uninterrupted run: {final_a}')
    print(f'  killed (SIGKILL) after {killed_at} was complete')
    print(f'  resumed from iteration {resume_point} to {final_b}')
    hook = 'yes' if has_hook else 'NO (random numbers after the resume will differ)'
    print(f'  RNGStateHook in custom_hooks: {hook}')
    print(f'  compared with atol={args.atol:g} (largest absolute difference):')
    for group in groups:
        verdict = 'equal' if group.worst == 0 else (
            'within atol' if group.worst <= args.atol else 'DIFFERENT')
        where = f'  at {group.worst_at}' if group.worst > 0 else ''
        print(f'    {group.name:<20} {group.count:>6} values  {group.worst:<10.3g} '
              f'{verdict}{where}')
    print(f'  result: {"EQUAL" if equal else "MISMATCH"}')
    return 0 if equal else 1


if __name__ == '__main__':
    run_tool(lambda: sys.exit(main()))
