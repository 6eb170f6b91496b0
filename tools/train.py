"""Train a model from an OpenMMLab config: ``python tools/train.py CONFIG [--resume] [--amp]``."""
import argparse

from mmengine.runner import Runner

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.engine import (check_data_paths, finish_launcher, prepare_launcher,
                            trusted_checkpoint_globals)
from repl_mm.engine.cli import add_common_args, merge_train_args, read_config, run_tool
from repl_mm.engine.explain_errors import (check_datasets_not_empty, explain_build_errors,
                                           explain_errors)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or without a path from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 on CUDA, bf16 autocast on CPU')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = merge_train_args(read_config(args.config), args)
    check_data_paths(cfg, ('train', 'val'))
    prepare_launcher(cfg)
    with explain_build_errors(args.config):
        runner = Runner.from_cfg(cfg)
    with trusted_checkpoint_globals(), explain_errors(cfg):
        check_datasets_not_empty(runner, ('train', 'val'))
        runner.train()
    finish_launcher()


if __name__ == '__main__':
    run_tool(main)
