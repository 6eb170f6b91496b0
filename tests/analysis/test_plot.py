"""Tests of repl_mm.analysis.plot: training logs read and drawn (tools/analysis/plot_logs.py)."""
import pytest
from matplotlib.image import imread
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.analysis.plot import plot_logs, read_training_log
from repl_mm.analysis.synthetic import synthetic_runner

from conftest import run_tool, write_config


@pytest.fixture(scope='module')
def trained_runs(tmp_path_factory):
    """Two 4-iteration runs (fused and light RepL CIFAR ResNet-20) with TrainingCostHook."""
    root = tmp_path_factory.mktemp('runs')
    work_dirs = []
    for kind in ('fused', 'light'):
        config = write_config(root / f'{kind}.py', 'RepLCIFARResNet',
                              extra=f", repl=dict(kind='{kind}')")
        cfg = Config.fromfile(str(config))
        work_dir = root / kind
        synthetic_runner(cfg, str(work_dir), max_iters=4, log_interval=1,
                         custom_hooks=cfg.custom_hooks).train()
        work_dirs.append(work_dir)
    return work_dirs


def test_plot_logs_overlays_two_runs(trained_runs, tmp_path):
    out = tmp_path / 'plots' / 'runs.png'
    result = run_tool('tools/analysis/plot_logs.py', *map(str, trained_runs), '--out', str(out))
    # 2 runs; repl: 3 blocks x (a, b) x 2 runs
    assert result.stdout.strip() == (f'{out}: loss (2 curves), memory (2 curves), '
                                     f'time (2 curves), repl (12 curves)')
    image = imread(str(out))
    assert image.shape[:2] == (4 * 320, 900)  # four panels of 3.2 x 9 inches at 100 dpi
    assert image.std() > 0.05  # something was drawn

    drawn = plot_logs([str(trained_runs[0])], str(tmp_path / 'one.png'),
                      ['lr', 'cost/params_trainable', 'nope'])
    assert drawn == {'lr': 1, 'cost/params_trainable': 1}
    curves = read_training_log(str(trained_runs[0]))
    assert curves['loss'][0] == [1, 2, 3, 4]
