"""Accuracy on real data: RepL against end-to-end training and its peers, several seeds.

    python tools/make_demo_data.py fashion-mnist --out data/fashion_mnist    # once
    python benchmarks/benchmark_accuracy.py run --setting resnet32 --seeds 0 1 2
    python benchmarks/benchmark_accuracy.py report                               # markdown tables

Every (setting, variant, seed) trains in its own process through tools/train.py into
``<out>/<setting>/<variant>/seed<k>/`` and leaves a ``result.json`` there; runs that have one are
skipped, so the grid fills up over several invocations and an interrupted run is simply redone.
``--jobs N`` trains N runs at a time (on a GPU machine with cores to spare; timings of concurrent
runs are not comparable with those of a quiet machine, so the report names the jobs and device).
``report`` prints mean and standard deviation of top-1 over the seeds present (and how many),
trainable parameters, seconds per iteration and peak memory of the same runs.

Settings: ``resnet32`` is the reference (800 iterations, batch 128, all 60k images);
``resnet32-long`` trains 5x longer, ``resnet32-w4`` is a 4x narrower network (4/8/16 channels),
``resnet32-w4-long`` trains that narrow network 3x longer (2,400 iterations), and
``resnet32-6k`` sees the first 6,000 training images only (``make_demo_data.py fashion-mnist
--num-train 6000 --out data/fashion_mnist_6k``): the places where deleting blocks might cost
accuracy that RepL can then win back.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

import torch

from run_results import summarize_run

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESNET = 'benchmarks/configs/fashion_mnist_resnet32.py'
VIT = 'benchmarks/configs/fashion_mnist_vit.py'


def schedule(iters: int) -> List[str]:
    """--cfg-options that stretch the config's schedule (cosine decay, one validation and one
    checkpoint at the end) to ``iters`` iterations."""
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}']


#: the CIFAR ResNet at a quarter of its width: 4/8/16 channels
NARROW = ['model.backbone.stem_channels=4', 'model.backbone.base_channels=4',
          'model.head.in_channels=16']
#: setting -> (config, --cfg-options shared by its variants)
SETTINGS: Dict[str, tuple] = {
    'resnet32': (RESNET, []),
    'resnet32-long': (RESNET, schedule(4000)),
    'resnet32-w4': (RESNET, NARROW),
    'resnet32-w4-long': (RESNET, NARROW + schedule(2400)),
    'resnet32-6k': (RESNET, ['train_dataloader.dataset.data_root=data/fashion_mnist_6k/']),
    'vit': (VIT, []),
}
#: variant -> --cfg-options, per backbone family
VARIANTS: Dict[str, Dict[str, List[str]]] = {
    'resnet': {
        'baseline': [],
        'repl-fused': ['model.backbone.type=RepLCIFARResNet', 'model.backbone.repl.kind=fused'],
        'repl-light': ['model.backbone.type=RepLCIFARResNet', 'model.backbone.repl.kind=light'],
        'removed': ['model.backbone.type=RepLCIFARResNet', 'model.backbone.repl.kind=removed'],
        'matched-resnet20': ['model.backbone.depth=20'],
        'stochastic-depth': ['model.backbone.drop_path_rate=0.2'],
    },
    'vit': {
        'baseline': [],
        'repl-fused': ['model.backbone.type=RepLVisionTransformer',
                       'model.backbone.repl.kind=fused'],
        'repl-light': ['model.backbone.type=RepLVisionTransformer',
                       'model.backbone.repl.kind=light'],
        'removed': ['model.backbone.type=RepLVisionTransformer',
                    'model.backbone.repl.kind=removed'],
        'matched-4-layers': ['model.backbone.arch.num_layers=4'],
        'stochastic-depth': ['model.backbone.drop_path_rate=0.1'],
    },
}


def family(setting: str) -> str:
    return 'vit' if setting.startswith('vit') else 'resnet'


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f'cpu, {os.environ.get("OMP_NUM_THREADS", "2")} threads'


def run_one(setting: str, variant: str, seed: int, out: str, jobs: int = 1,
            extra: List[str] = ()) -> None:
    work_dir = osp.join(out, setting, variant, f'seed{seed}')
    result_file = osp.join(work_dir, 'result.json')
    if osp.exists(result_file):
        print(f'skip {setting}/{variant}/seed{seed}: {result_file} exists')
        return
    config, shared = SETTINGS[setting]
    options = (shared + VARIANTS[family(setting)][variant] + [f'randomness.seed={seed}']
               + list(extra))
    command = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, config),
               '--work-dir', work_dir, '--cfg-options', *options]
    print(f'run  {setting}/{variant}/seed{seed}: {" ".join(command)}', flush=True)
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    os.makedirs(osp.dirname(work_dir), exist_ok=True)
    with open(work_dir + '.log', 'w') as log:
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        print(f'FAILED {setting}/{variant}/seed{seed} (exit {code}); see {work_dir}.log')
        return
    summary = summarize_run(work_dir)
    summary.update(setting=setting, variant=variant, seed=seed, config=config, options=options,
                   wall_s=time.time() - start, device=device_name(), jobs=jobs)
    with open(result_file, 'w') as file:
        json.dump(summary, file, indent=1)
    print(f'done {setting}/{variant}/seed{seed}: top-1 '
          f'{summary["metrics"].get("accuracy/top1")} in {summary["wall_s"]:.0f} s', flush=True)


def load_results(out: str, setting: str) -> Dict[str, List[dict]]:
    """``{variant: [result of each seed present]}`` of one setting, in the family's order."""
    rows = {}
    for variant in VARIANTS[family(setting)]:
        folder = osp.join(out, setting, variant)
        results = []
        for seed_dir in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
            path = osp.join(folder, seed_dir, 'result.json')
            if osp.exists(path):
                with open(path) as file:
                    results.append(json.load(file))
        if results:
            rows[variant] = results
    return rows


def top1(results: List[dict]) -> List[float]:
    return [r['metrics'].get('accuracy/top1', float('nan')) for r in results]


def _std(values: List[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float('nan')


def gap_analysis(rows: Dict[str, List[dict]]) -> List[str]:
    """Two questions, from the seeds present: does deleting the blocks lose more than two
    baseline seed standard deviations, and what share of that gap do the RepL kinds recover?

    A difference of means counts as beyond seed noise when it exceeds twice its standard error
    ``sqrt(s1^2 / n1 + s2^2 / n2)`` (seed standard deviations, at least 2 seeds each).
    """
    if 'baseline' not in rows or 'removed' not in rows:
        return []
    base, removed = top1(rows['baseline']), top1(rows['removed'])
    gap = statistics.mean(base) - statistics.mean(removed)
    change = f'loses {gap:.2f}' if gap >= 0 else f'gains {-gap:.2f}'
    if len(base) < 2:
        return [f'- removed {change} points against the baseline (one baseline seed: '
                f'seed noise unknown).']
    lines = [f'- removed {change} points against the baseline; two baseline seed '
             f'standard deviations are {2 * _std(base):.2f} (blocks matter here: '
             f'{"yes" if gap > 2 * _std(base) else "no"}).']
    for variant in ('repl-fused', 'repl-light'):
        if variant not in rows:
            continue
        values = top1(rows[variant])
        gain = statistics.mean(values) - statistics.mean(removed)
        error = (_std(values) ** 2 / len(values) + _std(removed) ** 2 / len(removed)) ** 0.5
        share = f'{gain / gap:.0%} of the gap' if gap > 0 else 'no gap to recover'
        if math.isnan(error):
            noise = 'seed noise unknown: one seed'
        else:
            noise = (f'{"beyond" if abs(gain) > 2 * error else "within"} seed noise: 2 x '
                     f'standard error {2 * error:.2f}')
        what = (f'recovers {gain:+.2f} points over removed, {share}' if gain >= 0 else
                f'scores {-gain:.2f} points under removed')
        lines.append(f'- {variant} {what} ({noise}); '
                     f'{statistics.mean(values) - statistics.mean(base):+.2f} against the '
                     f'baseline.')
    return lines


def report(out: str) -> None:
    for setting in SETTINGS:
        rows = load_results(out, setting)
        if not rows:
            continue
        print(f'\n### {setting} ({SETTINGS[setting][0]})\n')
        machines = sorted({f'{r.get("device", "cpu, 2 threads")}, {r.get("jobs", 1)} '
                           f'run(s) at a time' for results in rows.values() for r in results})
        print(f'Ran on: {"; ".join(machines)}.\n')
        print('| variant | seeds | top-1 per seed | top-1 mean | top-1 std | trainable params '
              '| s/iter | peak memory MiB | wall s / run |')
        print('|---|---:|---|---:|---:|---:|---:|---:|---:|')
        for variant, results in rows.items():
            values = top1(results)
            std = _std(values)

            def mean(key):
                present = [r[key] for r in results if key in r]
                return statistics.mean(present) if present else float('nan')

            seeds = ', '.join(f'{v:.2f} ({r["seed"]})' for v, r in zip(values, results))
            print(f'| {variant} | {len(results)} | {seeds} | {statistics.mean(values):.2f} | '
                  f'{"" if math.isnan(std) else f"{std:.2f}"} | '
                  f'{mean("params_trainable"):,.0f} | {mean("s_per_iter"):.3f} | '
                  f'{mean("peak_memory_mb"):,.0f} | {mean("wall_s"):.0f} |')
        analysis = gap_analysis(rows)
        if analysis:
            print('\n' + '\n'.join(analysis))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=['run', 'report'])
    parser.add_argument('--setting', nargs='+', default=['resnet32'], choices=list(SETTINGS))
    parser.add_argument('--variants', nargs='+', default=None,
                        help='default: every variant of the setting\'s family')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--out', default='work_dirs/benchmark_accuracy')
    parser.add_argument('--jobs', type=int, default=1, help='runs trained at a time')
    parser.add_argument('--order', choices=['seed', 'setting'], default='seed',
                        help='seed: every setting and variant at seed 0 first, then seed 1 ... '
                        '(a partial grid compares all); setting: finish the settings in the '
                        'order given')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value pairs added to every run (use another --out for them)')
    args = parser.parse_args()
    out = osp.abspath(args.out)
    if args.command == 'report':
        report(out)
        return
    runs = [(setting, variant, seed) for seed in args.seeds for setting in args.setting
            for variant in args.variants or VARIANTS[family(setting)]]
    if args.order == 'setting':
        runs.sort(key=lambda run: args.setting.index(run[0]))  # stable: seeds stay in order
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        list(pool.map(lambda run: run_one(*run, out=out, jobs=args.jobs,
                                          extra=args.cfg_options), runs))


if __name__ == '__main__':
    main()
