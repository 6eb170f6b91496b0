"""Parameters and FLOPs per backbone stage of a config's model; with --measure, training cost.

    python tools/analysis/cost_report.py CONFIG [--measure] [--format markdown|json]
        [--device cpu|cuda] [--iters N] [--shape H W] [--batch-size B]

Works for any mmdet / mmseg / mmpretrain config, RepL or not. The input size is read from the
test pipeline (or --shape); --measure runs training steps on a synthetic batch of it. The report
goes to stdout, logs and progress to stderr (see repl_mm/analysis/cost_report.py and
docs/cost_tools.md).
"""
import argparse
import contextlib
import json
import os.path as osp
import sys

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.analysis.cost_report import cost_report, format_markdown
from repl_mm.engine.cli import add_cfg_options, load_config, run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--measure', action='store_true',
                        help='also measure seconds per training iteration and peak memory')
    parser.add_argument('--format', choices=['markdown', 'json'], default='markdown')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--iters', type=int, default=5, help='measured iterations (after 1 '
                        'warm-up)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size; default: from the test pipeline')
    parser.add_argument('--batch-size', type=int,
                        help='batch of the measured steps; default: the config\'s train batch')
    add_cfg_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
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
