"""Plot loss, memory, time per iteration and RepL coefficients of training runs against iteration.

    python tools/analysis/plot_logs.py WORK_DIR [WORK_DIR ...] --out plot.png
        [--keys loss memory time repl]

Reads each work dir's JSON logs (<timestamp>/vis_data/scalars.json); several runs are overlaid.
A key is a group (loss, memory, time, repl) or any scalar name of the log (e.g. lr, loss_cls).
"""
import argparse

from repl_mm.analysis.plot import plot_logs
from repl_mm.engine.cli import run_tool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--keys', nargs='+', default=['loss', 'memory', 'time', 'repl'])
    args = parser.parse_args()
    drawn = plot_logs(args.work_dirs, args.out, args.keys)
    missing = [k for k in args.keys if k not in drawn]
    print(f'{args.out}: ' + ', '.join(f'{key} ({n} curves)' for key, n in drawn.items())
          + (f'; no data for {", ".join(missing)}' if missing else ''))


if __name__ == '__main__':
    run_tool(main)
