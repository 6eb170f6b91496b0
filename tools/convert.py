"""Convert a pretrained plain checkpoint into a RepL one, keeping what it computes.

    python tools/convert.py CONFIG PLAIN_CHECKPOINT OUT_DIR [--batches 4] [--steps 150]

CONFIG is the RepL config to fine-tune; PLAIN_CHECKPOINT a checkpoint of its plain twin (a whole
model's, or a backbone's alone). The replaced blocks start as the config's ``repl.warm_start``
says (``'activations'`` fits them on batches of the config's training data); with
``repl.blocks='auto'`` the plan is chosen first, within ``repl.budget``. Writes
``OUT_DIR/<config name>_repl.pth`` and ``OUT_DIR/<config name>_repl.py`` (the config with the
plan and ``load_from``: train it with ``tools/train.py``), and prints one line per replaced block
(``repl_mm.engine.convert_checkpoint``).
"""
import argparse

from repl_mm.engine.cli import add_cfg_options, config_name, load_config, run_tool
from repl_mm.engine.convert_checkpoint import convert_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the RepL config to fine-tune')
    parser.add_argument('checkpoint', help='the plain (pretrained) checkpoint')
    parser.add_argument('out_dir', help='where to write <name>_repl.pth and <name>_repl.py')
    parser.add_argument('--batches', type=int, default=4,
                        help='training batches to fit and measure on (0: none, unless '
                        "warm_start='activations' or blocks='auto' need them)")
    parser.add_argument('--steps', type=int, default=150,
                        help="fitting steps per block (warm_start='activations')")
    add_cfg_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    result = convert_checkpoint(load_config(args), args.checkpoint, args.out_dir,
                                config_name(args.config), args.batches, args.steps)
    for block, cost in result.ranking:
        print(f'auto plan: {block} alone changes the backbone output by {cost:.4f}')
    skipped = result.loaded['skipped']
    print(f'plan: {result.plan}; warm start: {result.warm_start}; plain tensors loaded: '
          f'{result.loaded["loaded"]}' + (f' ({skipped} outside the backbone skipped: another '
                                          f'shape, e.g. another number of classes)'
                                          if skipped else ''))
    for block in result.blocks:
        fit = (f'; fit {block.fit.error_before:.4f} -> {block.fit.error_after:.4f} in '
               f'{block.fit.steps} steps' if block.fit else '')
        error = 'not measured' if block.output_error is None else f'{block.output_error:.4f}'
        print(f'{block.path}: output error {error}{fit}')
    if result.output_error is not None:
        print(f'backbone output error: {result.output_error:.4f}')
    print(f'checkpoint: {result.checkpoint}\nconfig:     {result.config}')


if __name__ == '__main__':
    run_tool(main)
