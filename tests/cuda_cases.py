"""What the tests of the CUDA paths share. They carry the ``cuda`` marker: on a GPU machine run
them with ``python -m pytest -m cuda`` (``benchmarks/gpu_benchmarks.sh tests``); where no GPU is
present (CI) they are skipped, but one, which runs on the CPU.
Only mmpretrain is needed, so they also run where mmcv is installed without its compiled ops."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'


def needs_cuda(test):
    """A test of a CUDA path: marked ``cuda`` and skipped without a CUDA device."""
    return pytest.mark.cuda(pytest.mark.skipif(DEVICE != 'cuda',
                                               reason='needs a CUDA device')(test))


def build_mmpretrain(cfg: dict) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(copy.deepcopy(cfg))


CIFAR_CLASSIFIER = dict(
    type='ImageClassifier',
    backbone=dict(type='RepLCIFARResNet', depth=20, zero_init_residual=False, repl=dict()),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def classifier_batch(size: int = 8, seed: int = 0) -> dict:
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 32, 32), generator=generator, dtype=torch.uint8)
              for _ in range(size)]
    labels = torch.randint(0, 10, (size, ), generator=generator)
    return dict(inputs=images, data_samples=[DataSample().set_gt_label(int(label))
                                             for label in labels])
