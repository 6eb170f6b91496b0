"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``; prints every metric."""
import argparse

from mmengine.runner import Runner

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.engine import (check_data_paths, finish_launcher, load_strictly, prepare_launcher,
                            trusted_checkpoint_globals)
from repl_mm.engine.cli import add_common_args, merge_test_args, read_config, run_tool
from repl_mm.engine.explain_errors import (check_datasets_not_empty, explain_build_errors,
                                           explain_errors)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = merge_test_args(read_config(args.config), args)
    check_data_paths(cfg, ('test', ))
    prepare_launcher(cfg)
    with explain_build_errors(args.config):
        runner = Runner.from_cfg(cfg)
    with trusted_checkpoint_globals(), explain_errors(cfg, args.checkpoint):
        check_datasets_not_empty(runner, ('test', ))
        load_strictly(runner.model, args.checkpoint)  # refuses what load_from would half-load
        metrics = runner.test()
    for name, value in metrics.items():
        print(f'{name}: {value}')
    finish_launcher()


if __name__ == '__main__':
    run_tool(main)
