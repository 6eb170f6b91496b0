"""What ``tools/train.py`` and ``tools/test.py`` share: argument merging and clean errors.

Modelled on mmpretrain's ``tools/train.py``: one ``merge_*_args(cfg, args)`` handles the CLI, the
scripts stay a few lines.
"""
import argparse
import os
import os.path as osp
import sys
import traceback
from typing import Callable

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from repl_core import ReplError, parse_dict_literal
from .checkpoint_files import check_checkpoint_file, read_checkpoint


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` that also reads dict values: ``key={'layer3': [1, 3]}``.

    mmengine's own parses lists and tuples only, and recurses without end on a dict literal with
    a comma in it (``RecursionError``). Dicts are read by ``repl_core.parse_dict_literal``, the
    parser ``repl.blocks`` given as text goes through too.
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        plain, literal = [], {}
        for item in values:
            key, _, value = item.partition('=')
            if value.lstrip().startswith('{'):
                try:
                    literal[key] = parse_dict_literal(value, key)
                except ReplError as error:
                    parser.error(f'--cfg-options {error}')
            else:
                plain.append(item)
        super().__call__(parser, namespace, plain, option_string)
        getattr(namespace, self.dest).update(literal)


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...``, as every OpenMMLab tool has it (dict values too)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.dataset.data_root=data/coco/')


def config_name(path: str) -> str:
    """``configs/mask_rcnn_repl_r50_coco.py`` -> ``mask_rcnn_repl_r50_coco``: the name of its
    work dir and outputs."""
    return osp.splitext(osp.basename(path))[0]


def read_config(path: str) -> Config:
    """``Config.fromfile(path)``, with a clear error for a missing or unreadable config."""
    if not osp.isfile(path):
        raise ReplError(f'config {path}: no such file. Give the path of an OpenMMLab config, '
                        f'e.g. configs/mask_rcnn_repl_r50_coco.py.', path=path)
    try:
        return Config.fromfile(path)
    except SyntaxError as error:
        raise ReplError(f'config {path} is not valid Python: {error.msg} (line '
                        f'{error.lineno}).', path=path) from error
    except (OSError, ImportError) as error:  # a missing _base_, an unsupported file type
        raise ReplError(f'config {path} cannot be read: {error}', path=path) from error


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``args.cfg_options`` merged in."""
    cfg = read_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _merge_common(cfg: Config, args: argparse.Namespace) -> Config:
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', config_name(args.config))
    return cfg


def merge_train_args(cfg: Config, args: argparse.Namespace) -> Config:
    """``--work-dir``, ``--resume [auto|PATH]``, ``--amp``, ``--cfg-options``, ``--launcher``.

    ``--amp`` uses mmengine's ``AmpOptimWrapper`` (fp16, dynamic loss scale) on CUDA and
    ``CPUAutocastOptimWrapper`` (bf16 autocast) on CPU, where mmengine's wrapper asserts a GPU.
    """
    cfg = _merge_common(cfg, args)
    if args.amp:
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
            cfg.optim_wrapper.pop('loss_scale', None)
            print_log('--amp without CUDA: bf16 autocast on CPU (CPUAutocastOptimWrapper).',
                      logger='current')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_resumable(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_resumable(path: str) -> None:
    """Fail clearly unless ``path`` is a checkpoint a Runner wrote (mmengine's resume reads its
    ``meta`` and fails deep inside on anything else)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not {'meta', 'state_dict'} <= set(checkpoint):
        raise ReplError(f'--resume {path}: not a checkpoint a training wrote (it has no '
                        f"'meta' and 'state_dict'), so there is no training state to resume. To "
                        f'start from its weights instead: --cfg-options load_from={path}',
                        path=path)


def merge_test_args(cfg: Config, args: argparse.Namespace) -> Config:
    """``CHECKPOINT`` (loaded the stock way, ``load_from``, after hooks such as ``EMAHook`` have
    run ``before_run``), ``--work-dir``, ``--cfg-options``, ``--launcher``."""
    check_checkpoint_file(args.checkpoint)
    cfg = _merge_common(cfg, args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    return cfg


def run_tool(main: Callable[[], None]) -> None:
    """Run a tool's ``main``; a ``ReplError`` ends it with its message, not a traceback
    (``REPL_MM_DEBUG=1``: the traceback first)."""
    try:
        main()
    except ReplError as error:
        if os.environ.get('REPL_MM_DEBUG'):
            traceback.print_exc()
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
