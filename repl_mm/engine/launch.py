"""Distributed launch that works on CPU as well as on CUDA.

mmengine's pytorch launcher calls ``torch.cuda.set_device`` and its Runner wraps the model with
``device_ids=[LOCAL_RANK]``; both fail without a GPU. On CPU, repl-mm starts the gloo process
group itself before the Runner is built (the Runner then skips its own ``init_dist``), lets DDP
run without device ids, and turns SyncBN into BN (torch's SyncBN refuses CPU tensors once a
process group exists).
"""
import logging
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log


def convert_sync_bn(cfg: Any) -> int:
    """Turn every ``norm_cfg=dict(type='SyncBN', ...)`` in ``cfg`` into ``BN``; return how many."""
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') in ('SyncBN', 'MMSyncBN'):
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += convert_sync_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += convert_sync_bn(value)
    return count


def prepare_launcher(cfg: Config) -> None:
    """Adapt ``cfg`` for its launcher on this machine; start gloo on CPU."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher={cfg.launcher!r} on a machine without CUDA: only the '
                           f'pytorch launcher (tools/dist_train.sh) is supported on CPU.')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    converted = convert_sync_bn(cfg.model)
    if not dist.is_initialized():
        dist.init_process_group('gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    print_log(f'Distributed on CPU: gloo backend, rank {dist.get_rank()} of '
              f'{dist.get_world_size()}; {converted} SyncBN configs turned into BN.',
              logger='current')


def finish_launcher() -> None:
    """End a CPU distributed run: destroy the gloo group, flush the logs, exit without
    interpreter finalization (gloo's threads can abort it with 'terminate called without an
    active exception'; pytorch/pytorch#179291)."""
    if torch.cuda.is_available() or not dist.is_initialized():
        return
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
