"""Detection and segmentation on the demo data: RepL against the plain backbone, same schedule.

    python tools/make_demo_data.py coco --out data/demo_coco                 # once
    python tools/make_demo_data.py cityscapes --out data/demo_cityscapes     # once
    python benchmarks/benchmark_tasks.py [--out work_dirs/benchmarks/tasks] [--only det-repl ...]

Trains each config of RUNS with tools/train.py (same data, schedule and seed; validation on the
demo val split at the end of training; TrainingCostHook logs peak memory and trainable
parameters) into ``<out>/<run>/`` and leaves ``<out>/<run>/result.json`` there. Runs that have
one are skipped (``--force`` trains them again). Prints a markdown table of every run present:
box / mask AP (mmdet), mIoU (mmseg), trainable parameters, seconds per iteration (median and
range of the logged averages, the first log line left out) and peak memory.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.analysis import count_parameters
from run_results import summarize_run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: run -> config; each RepL config and its plain twin differ only in the backbone
RUNS = {
    'mask-rcnn-repl-r50': 'configs/demo/mask_rcnn_repl_r50_demo.py',
    'mask-rcnn-r50': 'benchmarks/configs/demo_mask_rcnn_r50.py',
    'deeplabv3plus-repl-r50': 'configs/demo/deeplabv3plus_repl_r50_demo.py',
    'deeplabv3plus-r50': 'benchmarks/configs/demo_deeplabv3plus_r50.py',
}
#: metric columns: (heading, key in the validation log)
METRICS = [('box AP', 'coco/bbox_mAP'), ('box AP50', 'coco/bbox_mAP_50'),
           ('mask AP', 'coco/segm_mAP'), ('mask AP50', 'coco/segm_mAP_50'), ('mIoU', 'mIoU'),
           ('mAcc', 'mAcc')]


def train(config: str, work_dir: str) -> None:
    """``tools/train.py CONFIG`` into ``work_dir``; its output goes to ``<work_dir>.log``."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env.setdefault('OMP_NUM_THREADS', '2')
    os.makedirs(osp.dirname(work_dir), exist_ok=True)
    with open(work_dir + '.log', 'w') as log:
        code = subprocess.call([sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
                                '--work-dir', work_dir], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f'training {config} failed (exit {code}); see {work_dir}.log')


def parameter_counts(cfg: Config) -> dict:
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    return {part: count.to_dict() for part, count in count_parameters(model).items()}


def result_of(name: str, config: str, work_dir: str) -> dict:
    cfg = Config.fromfile(osp.join(ROOT, config))
    return dict(run=name, config=config, **summarize_run(work_dir),
                params=parameter_counts(cfg), backbone=cfg.model.backbone.type)


def markdown(results: list) -> str:
    metrics = [(heading, key) for heading, key in METRICS
               if any(key in r['metrics'] for r in results)]
    lines = ['| run | backbone | ' + ' | '.join(h for h, _ in metrics)
             + ' | trainable backbone | trainable model | s/iter median (min-max) | '
             'peak memory MiB |',
             '|---|---|' + '---:|' * (len(metrics) + 4)]
    for r in results:
        cells = [r['run'], r['backbone']]
        cells += [f'{r["metrics"][key]:.3f}' if key in r['metrics'] else ''
                  for _, key in metrics]
        cells += [f'{r["params"]["backbone"]["trainable"]:,}',
                  f'{r["params"]["model"]["trainable"]:,}',
                  f'{r["s_per_iter"]:.2f} ({r["s_per_iter_min"]:.2f}-{r["s_per_iter_max"]:.2f})',
                  f'{r["peak_memory_mb"]:,.0f} ({r["memory_key"].rpartition("/")[2]})'
                  if 'peak_memory_mb' in r else '']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='work_dirs/benchmarks/tasks')
    parser.add_argument('--only', nargs='+', choices=list(RUNS), default=list(RUNS))
    parser.add_argument('--force', action='store_true', help='train runs that have results')
    args = parser.parse_args()
    results = []
    for name in args.only:
        work_dir = osp.abspath(osp.join(args.out, name))
        result_file = osp.join(work_dir, 'result.json')
        if args.force or not osp.exists(result_file):
            print(f'{name}: training {RUNS[name]} into {work_dir}', file=sys.stderr, flush=True)
            train(RUNS[name], work_dir)
            with open(result_file, 'w') as file:
                json.dump(result_of(name, RUNS[name], work_dir), file, indent=1)
        with open(result_file) as file:
            results.append(json.load(file))
    print(markdown(results))


if __name__ == '__main__':
    main()
