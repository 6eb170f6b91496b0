"""RepL against its plain backbone and peers: trainable parameters, FLOPs, s/iter, peak memory.

    python benchmarks/benchmark.py CONFIG [--backbone-only] [--repeats 3] [--iters 10] [--warmup 3]
        [--batch-size N] [--shape H W] [--variants baseline repl-fused ...] [--out DIR]
        [--device cpu|cuda] [--threads N] [--frozen-stages K] [--malloc steady|system]
        [--cfg-options ...]

Variants: baseline (the plain backbone), repl-fused, repl-light, removed (the same plan's blocks
deleted), and where the backbone class supports them frozen-stages, checkpointing (with_cp),
stochastic-depth (drop_path_rate) and amp (fp16 on CUDA, bf16 autocast on CPU). Each variant
runs in its own process on the same synthetic batch, seed and thread count; the order reverses
on odd repeats. Writes OUT/benchmark.json, OUT/benchmark.md and OUT/benchmark.png and prints
the markdown; progress goes to stderr. Logic: benchmarks/cost_benchmark.py.
"""
import argparse
import os.path as osp
import sys

import repl_mm  # noqa: F401  (registers the RepL classes)
from cost_benchmark import MALLOC_MODES, VARIANTS, format_markdown, run_benchmark
from repl_mm.engine.cli import add_cfg_options, config_name, load_config, run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--backbone-only', action='store_true',
                        help='time a training step of the backbone alone (sum of mean squared '
                        'outputs as the loss) instead of the whole model\'s train_step')
    parser.add_argument('--repeats', type=int, default=3, help='processes per variant')
    parser.add_argument('--iters', type=int, default=10, help='timed steps per process')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per process')
    parser.add_argument('--batch-size', type=int, help='default: the config\'s train batch')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size; default: from the test pipeline')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS),
                        help='baseline is always included')
    parser.add_argument('--out', help='default: work_dirs/benchmarks/<config name>')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda where available')
    parser.add_argument('--threads', type=int, help='torch threads of every worker; default: '
                        'this process\'s (OMP_NUM_THREADS)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--malloc', choices=MALLOC_MODES, default='steady',
                        help='steady: workers keep freed memory in glibc\'s heap (no page '
                        'faults from re-touching it, which otherwise vary by tens of thousands '
                        'a step between processes); system: the environment\'s allocator')
    parser.add_argument('--frozen-stages', type=int,
                        help='frozen_stages of the frozen-stages peer; default 1, or one more '
                        'than the config\'s own where it freezes stages already')
    parser.add_argument('--drop-path-rate', type=float, default=0.1,
                        help='drop_path_rate of the stochastic-depth peer')
    parser.add_argument('--amp', action='store_true',
                        help='every variant in mixed precision (fp16 on CUDA, bf16 on the CPU): '
                        'ratios to the plain network in mixed precision')
    add_cfg_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    name = config_name(args.config)
    cfg = load_config(args)
    out = args.out or osp.join('work_dirs', 'benchmarks',
                               name + ('_backbone' if args.backbone_only else '')
                               + ('_amp' if args.amp else ''))
    report = run_benchmark(
        cfg, osp.relpath(args.config), out, variants=args.variants,
        mode='backbone' if args.backbone_only else 'model', repeats=args.repeats,
        iters=args.iters, warmup=args.warmup, batch_size=args.batch_size, shape=args.shape,
        device=args.device, threads=args.threads, seed=args.seed,
        frozen_stages=args.frozen_stages, drop_path_rate=args.drop_path_rate,
        malloc=args.malloc, amp=args.amp,
        log=lambda message: print(message, file=sys.stderr, flush=True))
    print(format_markdown(report))
    print(f'\nWritten: {osp.join(out, "benchmark.json")}, benchmark.md, benchmark.png',
          file=sys.stderr)


if __name__ == '__main__':
    run_tool(main)
