"""Accuracy on real data: RepL against end-to-end training and its peers, several seeds.

    python tools/make_demo_data.py fashion-mnist --out data/fashion_mnist    # once
    python benchmarks/benchmark_accuracy.py run --setting resnet32 --seeds 0 1 2
    python benchmarks/benchmark_accuracy.py report                               # markdown tables
    python benchmarks/benchmark_accuracy.py compare --out NEW --against OLD     # two result sets

Every (setting, variant, seed) trains in its own process through tools/train.py into
``<out>/<setting>/<variant>/seed<k>/`` and leaves a ``result.json`` there; runs that have one are
skipped, so the grid fills up over several invocations and an interrupted run is simply redone.
``--jobs N`` trains N runs at a time (on a GPU machine with cores to spare; timings of concurrent
runs are not comparable with those of a quiet machine, so the report names the jobs and device).
``report`` prints mean and standard deviation of top-1 over the seeds present (and how many),
trainable parameters, seconds per iteration and peak memory of the same runs, then the
differences between variants paired by seed: per-seed differences, their mean and standard
deviation, and the 95% confidence interval of the mean difference with Student's t at n - 1
degrees of freedom (t = 4.30 for 3 seeds). An interval that includes zero is said to be not
distinguishable from zero.

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
from typing import Dict, List, Optional

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


def t_quantile(df: int) -> float:
    """Student's t at 0.975 with ``df`` degrees of freedom (4.30 for 3 seeds)."""
    from scipy import stats  # scipy comes with mmdet / mmsegmentation
    return float(stats.t.ppf(0.975, df))


def paired_difference(a: List[dict], b: List[dict]) -> Optional[dict]:
    """Top-1 of ``a`` minus top-1 of ``b``, paired by seed (the seeds both have): the
    differences, their mean and standard deviation and the 95% confidence interval of the mean
    difference with Student's t at n - 1 degrees of freedom (none for a single seed)."""
    by_seed = {r['seed']: v for r, v in zip(b, top1(b))}
    pairs = [(r['seed'], v - by_seed[r['seed']]) for r, v in zip(a, top1(a))
             if r['seed'] in by_seed]
    if not pairs:
        return None
    pairs.sort()
    diffs = [d for _, d in pairs]
    n, mean = len(diffs), statistics.mean(diffs)
    result = dict(seeds=[s for s, _ in pairs], diffs=diffs, n=n, mean=mean, std=_std(diffs),
                  low=float('nan'), high=float('nan'))
    if n > 1:
        half = t_quantile(n - 1) * result['std'] / math.sqrt(n)
        result.update(low=mean - half, high=mean + half)
    return result


def _interval(d: dict) -> str:
    """``95% CI [low, high]`` and whether it excludes zero."""
    if d['n'] < 2:
        return 'one seed: no interval'
    text = f'95% CI [{d["low"]:+.2f}, {d["high"]:+.2f}], n={d["n"]}'
    if d['low'] <= 0 <= d['high']:
        return f'{text}: not distinguishable from zero at n={d["n"]}'
    return f'{text}: excludes zero'


def comparisons(rows: Dict[str, List[dict]]) -> List[tuple]:
    """The comparisons the report makes, ``(a, b)`` for a - b, where both variants are
    present: every variant against the baseline, the RepL kinds and the matched plain network
    against removed, the RepL kinds against the matched network, light against fused."""
    matched = [v for v in rows if v.startswith('matched')]
    pairs = [(v, 'baseline') for v in rows if v != 'baseline']
    pairs += [(v, 'removed') for v in ('repl-fused', 'repl-light') + tuple(matched)]
    pairs += [(v, m) for m in matched for v in ('repl-fused', 'repl-light')]
    pairs += [('repl-light', 'repl-fused')]
    return [(a, b) for a, b in pairs if a in rows and b in rows]


def differences_table(rows: Dict[str, List[dict]]) -> List[str]:
    """Every comparison as a markdown table: per-seed differences, mean, std, t-based 95% CI."""
    lines = ['| difference (top-1 points) | seeds | per seed | mean | std | 95% CI (t, n-1 df) |',
             '|---|---:|---|---:|---:|---|']
    for a, b in comparisons(rows):
        d = paired_difference(rows[a], rows[b])
        if d is not None:
            lines.append(difference_row(f'{a} - {b}', d))
    return lines


def difference_row(label: str, d: dict) -> str:
    """One markdown row of ``paired_difference``'s result ``d``."""
    per_seed = ', '.join(f'{x:+.2f} ({s})' for s, x in zip(d['seeds'], d['diffs']))
    std = '' if math.isnan(d['std']) else f'{d["std"]:.2f}'
    ci = ('' if d['n'] < 2 else f'[{d["low"]:+.2f}, {d["high"]:+.2f}]'
          + (' includes 0' if d['low'] <= 0 <= d['high'] else ''))
    return f'| {label} | {d["n"]} | {per_seed} | {d["mean"]:+.2f} | {std} | {ci} |'


def gap_analysis(rows: Dict[str, List[dict]]) -> List[str]:
    """Two questions, from the seeds present, each difference paired by seed: does deleting the
    blocks cost accuracy (removed - baseline, its t-based 95% interval below zero), and what
    share of that gap do the RepL kinds recover (kind - removed, with its interval)?
    """
    if 'baseline' not in rows or 'removed' not in rows:
        return []
    gap_d = paired_difference(rows['removed'], rows['baseline'])
    if gap_d is None:
        return ['- removed and baseline share no seed: no paired comparison.']
    gap = -gap_d['mean']
    change = f'loses {gap:.2f}' if gap >= 0 else f'gains {-gap:.2f}'
    if gap_d['n'] < 2:
        return [f'- removed {change} points against the baseline (one seed: seed noise '
                f'unknown).']
    matters = 'yes' if gap_d['high'] < 0 else 'not shown'
    lines = [f'- removed {change} points against the baseline ({_interval(gap_d)}; blocks '
             f'matter here: {matters}).']
    for variant in ('repl-fused', 'repl-light'):
        if variant not in rows:
            continue
        d = paired_difference(rows[variant], rows['removed'])
        to_base = paired_difference(rows[variant], rows['baseline'])
        if d is None or to_base is None:
            continue
        gain = d['mean']
        share = f'{gain / gap:.0%} of the gap' if gap > 0 else 'no gap to recover'
        what = (f'recovers {gain:+.2f} points over removed, {share}' if gain >= 0 else
                f'scores {-gain:.2f} points under removed')
        lines.append(f'- {variant} {what} ({_interval(d)}); {to_base["mean"]:+.2f} against '
                     f'the baseline ({_interval(to_base)}).')
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
        table = differences_table(rows)
        if len(table) > 2:
            print('\nDifferences paired by seed (mean, standard deviation and 95% confidence '
                  'interval of the mean difference, Student\'s t with n - 1 degrees of freedom):'
                  '\n')
            print('\n'.join(table))
        analysis = gap_analysis(rows)
        if analysis:
            print('\n' + '\n'.join(analysis))


def compare(out: str, against: str, setting: str, variants: List[str]) -> None:
    """Each of ``variants`` in ``out`` minus the same variant in ``against`` (another code
    version or setting, e.g. an archived grid), paired by seed, and against ``against``'s
    removed and baseline where it has them."""
    ours, theirs = load_results(out, setting), load_results(against, setting)
    print(f'| difference (top-1 points), {osp.basename(out)} - {osp.basename(against)} | seeds '
          '| per seed | mean | std | 95% CI (t, n-1 df) |')
    print('|---|---:|---|---:|---:|---|')
    for variant in variants:
        for other in (variant, 'removed', 'baseline'):
            if variant not in ours or other not in theirs:
                continue
            d = paired_difference(ours[variant], theirs[other])
            if d is not None:
                print(difference_row(f'{variant} - {other} (theirs)', d))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=['run', 'report', 'compare'])
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
    parser.add_argument('--against', help='compare: the other results folder (its --out)')
    args = parser.parse_args()
    out = osp.abspath(args.out)
    if args.command == 'report':
        report(out)
        return
    if args.command == 'compare':
        if not args.against:
            parser.error('compare needs --against OTHER_OUT')
        for setting in args.setting:
            compare(out, osp.abspath(args.against), setting,
                    args.variants or VARIANTS[family(setting)])
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
