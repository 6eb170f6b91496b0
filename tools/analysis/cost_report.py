"""Parameters and FLOPs per backbone stage of a config's model; with --measure, training cost;
with --ledger, the memory ledger of one training step for the config and its variants.

    python tools/analysis/cost_report.py CONFIG [--measure] [--format markdown|json]
        [--device cpu|cuda] [--iters N] [--shape H W] [--batch-size B]
    python tools/analysis/cost_report.py CONFIG --ledger [--variants plain fused ...]
        [--backbone-only] [--frozen-stages N] [--out DIR] [--shape H W] [--batch-size B]

Works for any mmdet / mmseg / mmpretrain config, RepL or not. The input size is read from the
test pipeline (the train pipeline with --ledger) or --shape; --measure and --ledger run training
steps on a synthetic batch of it. The report goes to stdout, logs and progress to stderr (see
repl_mm/analysis/cost_report.py, repl_mm/analysis/ledger_report.py and docs/cost_tools.md).
"""
import argparse
import contextlib
import json
import os.path as osp
import sys

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.analysis.cost_report import cost_report, format_markdown
from repl_mm.analysis.ledger_report import (DEFAULT_VARIANTS, format_ledger_markdown,
                                            parse_variant, run_ledgers)
from repl_mm.engine.cli import add_cfg_options, config_name, load_config, run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--measure', action='store_true',
                        help='also measure seconds per training iteration and peak memory')
    parser.add_argument('--ledger', action='store_true',
                        help='the memory ledger of one training step of each --variants')
    parser.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                        metavar='KIND[+PEER]',
                        help='with --ledger: kinds plain, fused, light-batch, light-weight, '
                        'removed, each alone or with peers frozen, cp, amp, recompute (e.g. '
                        'fused+cp); default: every kind alone and with frozen, cp and amp')
    parser.add_argument('--backbone-only', action='store_true',
                        help='with --ledger: a step of the backbone alone (random input, mean '
                        'squared outputs as the loss) instead of the whole model')
    parser.add_argument('--frozen-stages', type=int,
                        help='with --ledger: frozen_stages of the frozen peer (default: 1, or '
                        'one more than the config freezes)')
    parser.add_argument('--out', help='with --ledger: folder for ledger.json / .md / .png '
                        '(default work_dirs/ledger/<config name>)')
    parser.add_argument('--format', choices=['markdown', 'json'], default='markdown')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--iters', type=int, default=5, help='measured iterations (after 1 '
                        'warm-up)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size; default: from the test pipeline (--ledger: the '
                        'train pipeline)')
    parser.add_argument('--batch-size', type=int,
                        help='batch of the measured steps; default: the config\'s train batch')
    add_cfg_options(parser)
    return parser.parse_args()


def ledger(args: argparse.Namespace, cfg) -> None:
    out = args.out or osp.join('work_dirs', 'ledger', config_name(args.config))
    report = run_ledgers(cfg, osp.relpath(args.config), out, variants=args.variants,
                         device=args.device, shape=args.shape, batch_size=args.batch_size,
                         backbone_only=args.backbone_only, frozen_stages=args.frozen_stages,
                         command='python ' + ' '.join(sys.argv), log=lambda message: print(message, file=sys.stderr))
    if args.format == 'json':
        print(json.dumps(report, indent=1))
    else:
        print(format_ledger_markdown(report))
    print(f'written: {osp.join(out, "ledger.json")}, ledger.md, ledger.png', file=sys.stderr)


def main() -> None:
    args = parse_args()
    if args.ledger:
        for name in args.variants:
            parse_variant(name)  # a bad name fails before anything is loaded
    cfg = load_config(args)
    if args.ledger:
        ledger(args, cfg)
        return
    with contextlib.redirect_stdout(sys.stderr):  # model-building logs must not mix with JSON
        report = cost_report(cfg, osp.relpath(args.config), measure=args.measure,
                             device=args.device, iters=args.iters, shape=args.shape,
                             batch_size=args.batch_size)
    if args.format == 'json':
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_markdown(report))


if __name__ == '__main__':
    run_tool(main)
