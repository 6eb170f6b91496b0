"""Check that a config's datasets exist before anything is built.

Without this, a missing dataset surfaces as a ``FileNotFoundError`` from deep inside mmengine or
pycocotools; with it, the user is told which paths were looked for and how to point at the data.
"""
import os.path as osp
from typing import Any, Iterator, List, Tuple

from mmengine.config import Config

from repl_core import ReplError


class DataNotFoundError(ReplError):
    """A dataset path named in a config does not exist."""


def _datasets(cfg: Any, where: str) -> Iterator[Tuple[str, dict]]:
    if not isinstance(cfg, dict):
        return
    if 'datasets' in cfg:  # ConcatDataset
        for i, child in enumerate(cfg['datasets']):
            yield from _datasets(child, f'{where}.datasets[{i}]')
    elif 'dataset' in cfg:  # RepeatDataset, ClassBalancedDataset, ...
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    else:
        yield where, cfg


def missing_data_paths(cfg: Config, splits: Tuple[str, ...]) -> List[str]:
    """``'<path> (<config key>)'`` for every path the datasets of ``splits`` need but lack."""
    missing = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for where, dataset in _datasets(loader.get('dataset'), f'{split}_dataloader.dataset'):
            root = dataset.get('data_root') or ''
            if root and not osp.isdir(root) and not dataset.get('download', False):
                missing.append(f'{root} ({where}.data_root)')
                continue
            ann_file = dataset.get('ann_file') or ''
            if ann_file:
                path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
                if not osp.isfile(path):
                    missing.append(f'{path} ({where}.ann_file)')
            prefixes = dataset.get('data_prefix') or {}
            if isinstance(prefixes, str):  # e.g. mmpretrain's data_prefix='train'
                prefixes = {'img_path': prefixes}
            for key, prefix in prefixes.items():
                path = prefix if osp.isabs(prefix) else osp.join(root, prefix)
                if prefix and not osp.isdir(path):
                    missing.append(f'{path} ({where}.data_prefix.{key})')
        evaluator = cfg.get(f'{split}_evaluator')
        for i, metric in enumerate(evaluator if isinstance(evaluator, list) else [evaluator]):
            ann_file = (metric or {}).get('ann_file')
            if ann_file and not osp.isfile(ann_file):
                missing.append(f'{ann_file} ({split}_evaluator.ann_file)')
    return missing


def check_data_paths(cfg: Config, splits: Tuple[str, ...]) -> None:
    """Raise ``DataNotFoundError`` listing every missing path and how to fix it."""
    missing = missing_data_paths(cfg, splits)
    if missing:
        listing = '\n  '.join(missing)
        raise DataNotFoundError(
            f'The dataset of this config was not found. Looked for:\n  {listing}\n'
            f'Put the dataset there in its standard layout (see README.md, "Real data"), or '
            f'point the config at your copy, e.g. --cfg-options '
            f'train_dataloader.dataset.data_root=/path/to/data/ (and the same for '
            f'val/test_dataloader and the evaluator\'s ann_file). To try repl-mm without the '
            f'dataset, run `make demo`, which trains on generated data.')
