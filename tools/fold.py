"""Fold a RepL checkpoint into a plain one that stock mmdet / mmseg / mmpretrain can run.

    python tools/fold.py CONFIG CHECKPOINT OUT_DIR

Writes ``OUT_DIR/<config name>_folded.pth`` (plain weights; loads with ``weights_only=True``) and
``OUT_DIR/<config name>_folded.py`` (the plain config, without repl-mm), after checking that the
folded backbone gives the RepL backbone's outputs (``repl_mm.engine.fold_checkpoint``). Fused kind
only: a light surrogate folds into a module of repl-mm, so evaluate light checkpoints with
repl-mm's ``tools/test.py``.
"""
import argparse

from repl_mm.engine.cli import add_cfg_options, config_name, load_config, run_tool
from repl_mm.engine.fold_checkpoint import fold_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the RepL config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='the RepL checkpoint (a Runner checkpoint or a '
                        'state dict)')
    parser.add_argument('out_dir', help='where to write <name>_folded.pth and <name>_folded.py')
    add_cfg_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    result = fold_checkpoint(load_config(args), args.checkpoint, args.out_dir,
                             config_name(args.config))
    print(f'folded {len(result.folded_blocks)} blocks '
          f'({", ".join(result.folded_blocks) or "none"}) of {args.checkpoint}')
    print(f'weights: {result.weights}\nconfig:  {result.config}')
    if result.still_needs_repl_mm:
        print(f'warning: the plain config still uses classes of repl-mm, so it keeps repl-mm in '
              f'custom_imports: {", ".join(result.still_needs_repl_mm)}')


if __name__ == '__main__':
    run_tool(main)
