"""Curves of training runs from mmengine's JSON scalar logs: loss, memory, time, RepL coefficients.

mmengine's ``LocalVisBackend`` appends one JSON object per log line to
``<work_dir>/<timestamp>/vis_data/scalars.json`` (a resumed run adds a timestamp folder). A training
line holds ``iter`` (the global iteration), ``step``, ``lr``, ``loss``, ``time``, ``data_time``,
mmengine's ``memory`` (CUDA only) and whatever hooks put into the message hub under ``train/``
(``TrainingCostHook``: ``cost/*`` and ``repl/<block>/a|b``); validation lines have no ``iter``.
"""
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Sequence, Tuple

from repl_core import ReplError

#: what each ``--keys`` group plots: scalar names, or a pattern for ``repl``
GROUPS = {
    'loss': ('loss', ),
    'memory': ('cost/cuda_peak_allocated_mb', 'cost/cuda_peak_reserved_mb',
               'cost/cpu_peak_rss_mb', 'memory'),
    'time': ('time', ),
}
TITLES = {'loss': 'loss', 'memory': 'peak memory (MiB)', 'time': 'time per iteration (s)',
          'repl': 'RepL coefficients: mean a (solid), mean b (dashed)'}
REPL_KEY = re.compile(r'^repl/(?P<block>.+)/(?P<row>[ab])$')

Curve = Tuple[List[int], List[float]]


def scalar_logs(work_dir: str) -> List[str]:
    """The ``scalars.json`` files of a work dir (all its timestamp folders, oldest first), of
    one timestamp folder, or the file itself."""
    if osp.isfile(work_dir):
        return [work_dir]
    for pattern in ('*/vis_data/scalars.json', 'vis_data/scalars.json'):
        files = sorted(glob.glob(osp.join(work_dir, pattern)))
        if files:
            return files
    raise ReplError(f'{work_dir}: no JSON log (looked for <timestamp>/vis_data/scalars.json and '
                    f'vis_data/scalars.json). Was it trained with a LoggerHook and '
                    f"mmengine's LocalVisBackend (the default visualizer)?")


def read_training_log(work_dir: str) -> Dict[str, Curve]:
    """``{scalar name: (iterations, values)}`` of the training lines, sorted by iteration.

    Where a resumed run logs an iteration again, the later timestamp folder wins.
    """
    by_iter: Dict[int, dict] = {}
    for path in scalar_logs(work_dir):
        with open(path) as file:
            for line in file:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                if 'iter' in record:
                    by_iter[int(record['iter'])] = record
    curves: Dict[str, Curve] = {}
    for iteration in sorted(by_iter):
        for key, value in by_iter[iteration].items():
            if key in ('iter', 'step', 'epoch') or not isinstance(value, (int, float)):
                continue
            xs, ys = curves.setdefault(key, ([], []))
            xs.append(iteration)
            ys.append(float(value))
    return curves


def _labels(work_dirs: Sequence[str]) -> List[str]:
    names = [osp.basename(osp.normpath(w)) for w in work_dirs]
    if len(set(names)) == len(names):
        return names
    return [osp.relpath(w) for w in work_dirs]


def plot_logs(work_dirs: Sequence[str], out: str,
              keys: Sequence[str] = ('loss', 'memory', 'time', 'repl')) -> Dict[str, int]:
    """Plot the runs of ``work_dirs`` overlaid, one panel per key, against iteration; save PNG.

    Args:
        keys: groups (``loss``, ``memory``, ``time``, ``repl``) or scalar names of the log
            (e.g. ``lr``, ``loss_cls``, ``cost/params_trainable``).

    Returns:
        ``{key: number of curves drawn}``; a key with no data in any run is left out (and gets
        no panel).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    runs = [(label, read_training_log(w)) for label, w in zip(_labels(work_dirs), work_dirs)]
    panels = []
    for key in keys:
        curves = []
        for run_index, (label, log) in enumerate(runs):
            if key == 'repl':
                blocks = sorted({m['block'] for m in map(REPL_KEY.match, log) if m})
                for block_index, block in enumerate(blocks):
                    for row, style in (('a', '-'), ('b', '--')):
                        name = f'repl/{block}/{row}'
                        if name in log:
                            curves.append((log[name], f'{label}: {block}' if row == 'a' else None,
                                           style, (run_index, block_index)))
            else:
                names = [n for n in GROUPS.get(key, (key, )) if n in log]
                if key == 'memory' and len(names) > 1 and 'memory' in names:
                    names.remove('memory')  # mmengine's CUDA value duplicates ours
                for style, name in zip(('-', '--', ':', '-.'), names):
                    suffix = f' {name}' if len(GROUPS.get(key, ())) > 1 else ''
                    curves.append((log[name], f'{label}{suffix}', style, (run_index, 0)))
        if curves:
            panels.append((key, curves))
    if not panels:
        raise ReplError(f'None of the keys {list(keys)} is in the training logs of '
                        f'{list(work_dirs)}.')
    figure = Figure(figsize=(9, 3.2 * len(panels)), constrained_layout=True)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    colours = [f'C{i}' for i in range(10)]
    for ax, (key, curves) in zip(axes, panels):
        shades = {}
        for (xs, ys), label, style, colour_key in curves:
            colour = colours[shades.setdefault(colour_key, len(shades)) % len(colours)]
            ax.plot(xs, ys, linestyle=style, color=colour, label=label,
                    marker='.' if len(xs) < 30 else None)
        ax.set_title(TITLES.get(key, key))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small', ncol=2 if len(curves) > 8 else 1)
    axes[-1].set_xlabel('iteration')
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=100)
    return {key: len(curves) for key, curves in panels}
