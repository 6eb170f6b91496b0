"""The fine-tuning protocol of benchmarks/results/cpu/transfer/preregistration.md, as commands.

Each stage runs ``benchmark_transfer.py run`` (which skips results already on disk, so a stage
can be stopped and restarted) and makes its choice from the validation results only::

    python benchmarks/transfer_protocol.py resnet20 --stage 1   # the learning-rate grid
    python benchmarks/transfer_protocol.py resnet20 --stage 2   # starts, kinds, the search
    python benchmarks/transfer_protocol.py resnet20 --stage 3   # coefficient lr, best two
    python benchmarks/transfer_protocol.py resnet20 --stage 5   # the test split, once
    python benchmarks/transfer_protocol.py resnet20 --choices   # what the stages chose
    python benchmarks/transfer_protocol.py resnet20 --report    # every stage's table

Stage 4 (the pre-registered search) runs inside stage 2: its candidates are validation
variants like the others; its winner is the candidate with the highest validation mean.
"""
import argparse
import glob
import json
import math
import os.path as osp
import statistics
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GRID = {'resnet20': [0.003, 0.01, 0.03], 'vit': [0.00025, 0.0005, 0.001]}
GROWTH = {'resnet20': 3.0, 'vit': 2.0}
GRID_VARIANTS = ['plain', 'removed', 'frozen-blocks', 'fused-default']
#: the variants that equal ``fused-default`` / ``light-default`` (the family's default start):
#: not run twice, not ranked twice (amendments in preregistration.md)
DEFAULT_START = {'resnet20': 'fused-activations', 'vit': 'fused-identity'}
LIGHT_DEFAULT_START = {'resnet20': None, 'vit': 'light-identity'}
STAGE2 = ['fused-weights', 'fused-identity', 'fused-activations', 'fused-activations-ch',
          'light-identity', 'light-activations-ch', 'light-default', 'light-own', 'frozen']
SEARCH = ['fused-activations-ch', 'fused-distill', 'fused-activations-ch-distill', 'progressive']
#: the RepL variants stage 3 ranks (light-own's surrogate has weights of its own: a control)
REPL = ['fused-default', 'fused-weights', 'fused-identity', 'fused-activations',
        'fused-activations-ch', 'light-identity', 'light-activations-ch', 'light-default']
MULTS = [3.0, 10.0]
#: stage 5 runs these, and ``final_choices``
FINAL = ['plain', 'removed', 'frozen-blocks', 'frozen', 'fused-default', 'light-default']


def by_seed(arch: str, split: str, lr: float,
            mult: Optional[float] = None) -> Dict[str, Dict[int, float]]:
    """``{variant: {seed: top-1}}`` of one setting (``mult`` None: the product's)."""
    tag = f'{split}_s100_i300_lr{lr}_m{"default" if mult is None else f"{mult:g}"}'
    found: Dict[str, Dict[int, float]] = {}
    for path in sorted(glob.glob(osp.join(ROOT, 'work_dirs/transfer', arch, tag, '*.json'))):
        with open(path) as file:
            result = json.load(file)
        found.setdefault(result['variant'], {})[result['seed']] = result['top1']
    return found


def results(arch: str, split: str, lr: float, mult: Optional[float] = None) -> Dict[str, list]:
    """``{variant: [top-1 of each seed, in seed order]}`` of one setting."""
    return {variant: [top1[seed] for seed in sorted(top1)]
            for variant, top1 in by_seed(arch, split, lr, mult).items()}


def mean(values: List[float]) -> float:
    return statistics.mean(values) if values else float('-inf')


def run(arch: str, split: str, lr: float, variants: List[str],
        mult: Optional[float] = None) -> None:
    command = [sys.executable, osp.join(ROOT, 'benchmarks/benchmark_transfer.py'), 'run',
               '--arch', arch, '--split', split, '--lr', repr(lr), '--variants', *variants]
    if mult is not None:
        command += ['--coefficient-lr-mult', repr(mult)]
    subprocess.run(command, check=True, cwd=ROOT)


def complete(found: Dict[str, list], variants: List[str]) -> bool:
    return all(len(found.get(v, [])) >= 5 for v in variants)


def chosen_lr(arch: str) -> Tuple[float, List[float]]:
    """Stage 1's rate: the highest mean over the four grid variants; the grid as it stands."""
    grid = sorted(GRID[arch])
    while True:
        means = {}
        for lr in grid:
            found = results(arch, 'val', lr)
            if not complete(found, GRID_VARIANTS):
                return float('nan'), grid
            means[lr] = mean([x for v in GRID_VARIANTS for x in found[v]])
        best = max(grid, key=means.get)
        if best == grid[0]:
            grid.insert(0, float(f'{grid[0] / GROWTH[arch]:.3g}'))
        elif best == grid[-1]:
            grid.append(float(f'{grid[-1] * GROWTH[arch]:.3g}'))
        else:
            return best, grid


def same_as_a_default(arch: str, variant: str) -> bool:
    return variant in (DEFAULT_START[arch], LIGHT_DEFAULT_START[arch])


def stage2_variants(arch: str) -> List[str]:
    return [v for v in dict.fromkeys(STAGE2 + SEARCH) if not same_as_a_default(arch, v)]


def best_two(arch: str, lr: float) -> List[str]:
    """The two RepL variants with the highest validation means, and any tied with the second
    (the tie rule of the amendments: tied variants are all carried)."""
    found = results(arch, 'val', lr)
    ranked = sorted((v for v in REPL if not same_as_a_default(arch, v) and v in found),
                    key=lambda v: mean(found[v]), reverse=True)
    second = mean(found[ranked[1]])
    return ranked[:2] + [v for v in ranked[2:] if math.isclose(mean(found[v]), second)]


def chosen_mult(arch: str, lr: float, variant: str) -> Optional[float]:
    """Stage 3's coefficient rate of ``variant``: None (the product's 1) unless 3 or 10 wins.

    Raises:
        LookupError: stage 3 has not run all its seeds for ``variant``.
    """
    scores = {None: mean(results(arch, 'val', lr).get(variant, []))}
    for mult in MULTS:
        runs = results(arch, 'val', lr, mult).get(variant, [])
        if len(runs) < 5:
            raise LookupError(f'stage 3 is not complete for {variant}')
        scores[mult] = mean(runs)
    return max(scores, key=lambda m: (scores[m], m is None))


def search_winner(arch: str, lr: float) -> str:
    found = results(arch, 'val', lr)
    return max(SEARCH, key=lambda v: mean(found.get(v, [])))


def choices(arch: str) -> dict:
    lr, grid = chosen_lr(arch)
    made = dict(arch=arch, grid=grid, lr=lr)
    if lr != lr:
        return made
    found = results(arch, 'val', lr)
    made['stage2_complete'] = complete(found, stage2_variants(arch))
    if made['stage2_complete']:
        made['best_two'] = best_two(arch, lr)
        made['search_winner'] = search_winner(arch, lr)
        try:
            made['mult'] = {v: chosen_mult(arch, lr, v) for v in made['best_two']}
        except LookupError:
            made['mult'] = 'pending: stage 3 is not complete'
    return made


def final_choices(made: dict) -> List[Tuple[str, Optional[float]]]:
    """Stage 5's chosen variants: the best two at their stage-3 rate, the search winner at the
    rate it was chosen with (1) and, if stage 3 chose another for it, that one too."""
    chosen = [(v, made['mult'][v]) for v in made['best_two']]
    chosen.append((made['search_winner'], None))
    chosen.append((made['search_winner'], made['mult'].get(made['search_winner'])))
    return [c for c in dict.fromkeys(chosen) if c not in {(v, None) for v in FINAL}]


def step_costs(arch: str) -> Optional[Dict[str, Tuple[float, float, float]]]:
    """``{variant: (trainable, memory at the step's peak, FLOPs)}`` against plain, from
    ``benchmark_transfer.py costs`` (``costs_b32.json``), or None where it has not run. A
    ``-distill`` candidate costs its base variant's step after its first 60 steps."""
    path = osp.join(ROOT, 'work_dirs/transfer', arch, 'costs_b32.json')
    if not osp.isfile(path):
        return None
    with open(path) as file:
        rows = json.load(file)['variants']

    def work(row: dict) -> Tuple[int, int, int]:
        return row['trainable'], row['peak_bytes'], sum(row['flops'].values())

    plain = work(rows['plain'])
    return {variant: tuple(a / b for a, b in zip(work(row), plain))
            for variant, row in rows.items()}


def report(arch: str) -> None:
    """Every stage's table so far, in markdown: means, and paired differences (mean and t-based
    95% interval over common seeds) against the peers; the test table with each variant's step
    costs against plain (``step_costs``)."""
    from benchmark_transfer import paired
    lr, grid = chosen_lr(arch)
    print(f'### {arch}: stage 1, the learning rate (validation, top-1 mean of 5 seeds)\n')
    print('| lr | ' + ' | '.join(GRID_VARIANTS) + ' | mean of the four |')
    print('|---:|' + '---:|' * (len(GRID_VARIANTS) + 1))
    for point in grid:
        found = results(arch, 'val', point)
        cells = [f'{mean(found.get(v, [])):.2f}' for v in GRID_VARIANTS]
        pooled = [x for v in GRID_VARIANTS for x in found.get(v, [])]
        print(f'| {point:g} | ' + ' | '.join(cells) + f' | {mean(pooled):.2f} |')
    if lr != lr:
        return

    costs = step_costs(arch)

    def table(title: str, split: str, rows: List[Tuple[str, Optional[float]]]) -> None:
        base = by_seed(arch, split, lr)
        with_costs = split == 'test' and costs is not None
        print(f'\n### {arch}: {title} (lr {lr:g})\n')
        print('| variant | coefficient lr mult | n | top-1 mean ± std | vs plain | vs removed | '
              'vs frozen-blocks |' + (' trainable | memory at peak | FLOPs |' if with_costs
                                      else ''))
        print('|---|---:|---:|---:|---:|---:|---:|' + ('---:|' * 3 if with_costs else ''))
        for variant, mult in rows:
            runs = by_seed(arch, split, lr, mult).get(variant, {})
            if not runs:
                continue
            values = [runs[s] for s in sorted(runs)]
            spread = statistics.stdev(values) if len(values) > 1 else float('nan')
            cells = []
            for peer in ('plain', 'removed', 'frozen-blocks'):
                common = sorted(set(runs) & set(base.get(peer, {})))
                cells.append('-' if (peer == variant and mult is None) or not common else
                             paired([runs[s] for s in common], [base[peer][s] for s in common]))
            if with_costs:  # not measured: empty cells
                ratios = costs.get(variant.removesuffix('-distill'))
                cells += [f'{ratio:.2f}x' for ratio in ratios] if ratios else [''] * 3
            print(f'| {variant} | {"1" if mult is None else f"{mult:g}"} | {len(values)} | '
                  f'{statistics.mean(values):.2f} ± {spread:.2f} | ' + ' | '.join(cells) + ' |')

    table('stages 2 and 4, starts, kinds and the search (validation)', 'val',
          [(v, None) for v in GRID_VARIANTS + stage2_variants(arch)])
    made = choices(arch)
    if made.get('stage2_complete'):
        table('stage 3, the coefficient learning rate of the best two (validation)', 'val',
              [(v, m) for v in made['best_two'] for m in (None, *MULTS)])
        if isinstance(made['mult'], dict):
            table('stage 5, the test split (once)', 'test',
                  [(v, None) for v in FINAL] + final_choices(made))
        print(f'\nChosen on validation: best two {made["best_two"]} (coefficient lr mult '
              f'{made["mult"]}), search winner {made["search_winner"]}.')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('arch', choices=list(GRID))
    parser.add_argument('--stage', type=int, choices=[1, 2, 3, 5])
    parser.add_argument('--choices', action='store_true', help='print what the stages chose')
    parser.add_argument('--report', action='store_true', help='print every stage\'s table')
    args = parser.parse_args()
    arch = args.arch
    if args.report:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        report(arch)
        return
    if args.choices or args.stage is None:
        print(json.dumps(choices(arch), indent=1))
        return
    if args.stage == 1:
        while True:
            lr, grid = chosen_lr(arch)
            if lr == lr:
                print(f'stage 1: lr {lr:g} (grid {grid})')
                return
            for point in grid:
                run(arch, 'val', point, GRID_VARIANTS)
    lr, _ = chosen_lr(arch)
    if lr != lr:
        sys.exit('stage 1 is not complete: run --stage 1 first')
    if args.stage == 2:
        run(arch, 'val', lr, stage2_variants(arch))
        return
    if not complete(results(arch, 'val', lr), stage2_variants(arch)):
        sys.exit('stage 2 is not complete: run --stage 2 first')
    if args.stage == 3:
        for mult in MULTS:
            run(arch, 'val', lr, best_two(arch, lr), mult)
        return
    made = choices(arch)
    if not isinstance(made['mult'], dict):
        sys.exit('stage 3 is not complete: run --stage 3 first')
    run(arch, 'test', lr, FINAL)
    for variant, mult in final_choices(made):
        run(arch, 'test', lr, [variant], mult)


if __name__ == '__main__':
    main()
