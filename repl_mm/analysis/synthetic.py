"""Training inputs without a dataset: a batch of a config's framework (mmdet, mmseg, mmpretrain)
and input size, so a model's costs are measured on any machine, with any config."""
import copy
import os
import uuid
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from repl_core import ReplError

FRAMEWORK_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def framework_of(cfg) -> str:
    """``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in FRAMEWORK_SCOPES:
        raise ReplError(f'default_scope={scope!r}: cost tools serve configs of '
                        f'{", ".join(FRAMEWORK_SCOPES)} (set default_scope in the config).')
    return scope


def model_cfg_of(cfg) -> dict:
    """The model config as mmengine's Runner builds it: with the config's top-level
    ``data_preprocessor`` (mmpretrain's configs put mean, std and ``num_classes`` for batch
    augments there) where the model sets none."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model


def _dataset_cfg(loader_cfg) -> dict:
    dataset = (loader_cfg or {}).get('dataset', {}) or {}
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset


def _pair(value) -> Tuple[int, int]:
    """``int`` or ``(w, h)`` (mmcv's order) -> ``(h, w)``."""
    if isinstance(value, (int, float)):
        return int(value), int(value)
    return int(value[1]), int(value[0])


def _pipeline_shape(pipeline) -> Optional[Tuple[int, int]]:
    """``(H, W)`` the last size-setting transform of ``pipeline`` gives, ``None`` if none does."""
    shape = None
    for transform in pipeline:
        kind = str(transform.get('type', '')).rpartition('.')[2]
        if kind == 'Resize' and transform.get('scale') is not None:
            shape = _pair(transform['scale'])
        elif kind in ('ResizeEdge', 'RandomResizedCrop'):
            shape = _pair(transform['scale'])
        elif kind == 'CenterCrop':
            shape = _pair(transform['crop_size'])
        elif kind == 'RandomCrop':  # (h, w), unlike mmcv's (w, h)
            shape = _pair(transform['crop_size'])[::-1]
    return shape


def _dataset_fallback(dataset: dict) -> Tuple[int, int]:
    dataset_type = str(dataset.get('type', ''))
    for name, size in (('CIFAR', 32), ('MNIST', 28)):
        if name in dataset_type.upper():
            return size, size
    raise ReplError('Cannot read the input size from the config\'s pipeline (no Resize, '
                    'ResizeEdge, CenterCrop, RandomCrop or RandomResizedCrop); pass it with '
                    '--shape H W.')


def input_shape(cfg) -> Tuple[int, int]:
    """``(H, W)`` of the model's input, read from the test pipeline.

    The last of ``Resize`` (``scale``; with ``keep_ratio`` it bounds the image), ``ResizeEdge``
    (a square of the edge) and ``CenterCrop`` (``crop_size``) wins; a pipeline without any (e.g.
    CIFAR's) falls back on the dataset type (CIFAR 32, MNIST 28).
    """
    dataset = _dataset_cfg(cfg.get('test_dataloader') or cfg.get('val_dataloader'))
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    return _pipeline_shape(pipeline) or _dataset_fallback(dataset)


def train_input_shape(cfg) -> Tuple[int, int]:
    """``(H, W)`` of a training input, read from the train pipeline: the last ``Resize``
    (mmdet's ``(1333, 800)`` with ``keep_ratio`` bounds the image: 800x1333), ``RandomCrop``
    (mmseg's Cityscapes 512x1024 crop), ``RandomResizedCrop`` (mmpretrain's 224) ... wins; else
    the test pipeline's size (``input_shape``)."""
    dataset = _dataset_cfg(cfg.get('train_dataloader'))
    pipeline = dataset.get('pipeline') or cfg.get('train_pipeline') or []
    return _pipeline_shape(pipeline) or input_shape(cfg)


def _det_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = shape
    boxes = []
    for _ in range(3):  # three boxes of 1/4 to 1/2 of the image
        w, h = (int(s * (0.25 + 0.25 * torch.rand(1, generator=generator).item()))
                for s in (width, height))
        x0 = int((width - w) * torch.rand(1, generator=generator).item())
        y0 = int((height - h) * torch.rand(1, generator=generator).item())
        boxes.append((x0, y0, x0 + w, y0 + h))
    masks = np.zeros((len(boxes), height, width), dtype=np.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        mask[y0:y1, x0:x1] = 1
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, scale_factor=(1., 1.),
                                         flip=False, flip_direction=None))
    sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                       labels=torch.zeros(len(boxes), dtype=torch.long),
                                       masks=BitmapMasks(masks, height, width))
    return sample


def _seg_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         scale_factor=(1., 1.), flip=False))
    labels = torch.randint(0, 2, (1, *shape), generator=generator)
    sample.gt_sem_seg = PixelData(data=labels)
    return sample


def _cls_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmpretrain.structures import DataSample
    return DataSample(metainfo=dict(img_shape=shape, ori_shape=shape)).set_gt_label(0)


_SAMPLES = {'mmdet': _det_sample, 'mmseg': _seg_sample, 'mmpretrain': _cls_sample}


def input_channels(cfg) -> int:
    """Channels of the model's input images: the backbone's ``in_channels`` (1 for a grey-image
    config), else 3."""
    return int(cfg.model.backbone.get('in_channels', 3))


def synthetic_item(framework: str, shape: Tuple[int, int], seed: int = 0,
                   channels: int = 3) -> Dict[str, Any]:
    """One dataset item as the framework's packing transform makes it: a random ``uint8``
    ``(channels, H, W)`` image and a data sample with targets (3 boxes with masks for mmdet, a
    two-class label map for mmseg, label 0 for mmpretrain)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (channels, *shape), dtype=torch.uint8, generator=generator)
    return dict(inputs=image, data_samples=_SAMPLES[framework](tuple(shape), generator))


def synthetic_batch(framework: str, shape: Tuple[int, int], batch_size: int,
                    channels: int = 3) -> Dict[str, list]:
    """A collated batch of ``synthetic_item``s, ready for ``model.train_step``."""
    items = [synthetic_item(framework, shape, seed, channels) for seed in range(batch_size)]
    return dict(inputs=[item['inputs'] for item in items],
                data_samples=[item['data_samples'] for item in items])


def backbone_input(cfg, batch_size: int, shape: Tuple[int, int], seed: int) -> torch.Tensor:
    """``(N, in_channels, H, W)`` standard-normal input of a backbone-only step."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, input_channels(cfg), *shape, generator=generator)


def backbone_step(backbone: torch.nn.Module, inputs: torch.Tensor,
                  optim_wrapper) -> Callable[[], None]:
    """A backbone-only training step: forward, ``sum(mean(out ** 2))`` over the outputs (a mean,
    so the gradient scale stays finite whatever the output size), backward, optimizer step,
    through ``optim_wrapper`` (so AMP wrappers autocast it)."""

    def step() -> None:
        with optim_wrapper.optim_context(backbone):
            outputs = backbone(inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs, )
        loss = sum(out.float().square().mean() for out in outputs if torch.is_tensor(out))
        optim_wrapper.update_params(loss)

    return step


class SyntheticDataset(torch.utils.data.Dataset):
    """``length`` synthetic items for mmengine's Runner (collate with ``pseudo_collate``)."""

    def __init__(self, framework: str, shape: Tuple[int, int], length: int,
                 channels: int = 3) -> None:
        self.items = [synthetic_item(framework, shape, seed, channels) for seed in range(length)]
        self.metainfo = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.items[index]


def synthetic_runner(cfg, work_dir: str, max_iters: int, shape: Optional[Tuple[int, int]] = None,
                     batch_size: Optional[int] = None, log_interval: int = 1,
                     custom_hooks: Sequence = (), checkpoint: bool = False):
    """An mmengine ``Runner`` that trains the config's model and optimizer on synthetic data.

    Iteration-based for ``max_iters``, logging every ``log_interval`` iterations (text log and
    ``<work_dir>/<timestamp>/vis_data/scalars.json``); with ``checkpoint``, it saves
    ``<work_dir>/iter_<max_iters>.pth``. Everything else is mmengine's default.
    """
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from mmengine.runner import Runner
    framework = framework_of(cfg)
    shape = tuple(shape) if shape else input_shape(cfg)
    batch_size = batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1)
    dataset = SyntheticDataset(framework, shape, 2 * batch_size, input_channels(cfg))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=pseudo_collate,
                                         sampler=InfiniteSampler(dataset, shuffle=False))
    default_hooks = dict(logger=dict(type='LoggerHook', interval=log_interval),
                         checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                         interval=max_iters if checkpoint else -1))
    return Runner(model=model_cfg_of(cfg), work_dir=work_dir, train_dataloader=loader,
                  optim_wrapper=copy.deepcopy(cfg.optim_wrapper),
                  train_cfg=dict(by_epoch=False, max_iters=max_iters),
                  default_hooks=default_hooks, custom_hooks=list(custom_hooks),
                  log_processor=dict(by_epoch=False), default_scope=framework,
                  experiment_name=f'{os.path.basename(os.path.abspath(work_dir))}_'
                                  f'{uuid.uuid4().hex[:8]}')
