"""The classic CIFAR ResNet of depth 6n+2 (He et al., 2016, section 4.2) for mmpretrain.

mmpretrain's ``ResNet_CIFAR`` is the ImageNet ResNet (depths 18-152, 4 stages, 64-512 channels)
with a CIFAR stem. The CIFAR networks of the ResNet paper (and of RepL's v1 experiments) are
smaller: a 3x3 stem of 16 channels, then 3 stages of n BasicBlocks with 16, 32 and 64 channels
(strides 1, 2, 2), global pooling: ResNet-20 / 32 / 44 / 56 / 110 for n = 3 / 5 / 7 / 9 / 18,
0.27M / 0.46M / 0.66M / 0.85M / 1.7M parameters. Shortcuts that change shape are 1x1
projections (the paper's option B; option A's zero padding has no mmpretrain block).
"""
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS


@MODELS.register_module()
class CIFARResNet(ResNet_CIFAR):
    """Classic CIFAR ResNet; ``depth`` is 6n+2 (20, 32, 44, 56, 110, ...).

    Other arguments are ``ResNet_CIFAR``'s; the defaults give the paper's network, returning the
    last stage's ``(N, 64, H/4, W/4)`` map.
    """

    def __init__(self, depth: int, stem_channels: int = 16, base_channels: int = 16,
                 num_stages: int = 3, strides=(1, 2, 2), dilations=(1, 1, 1),
                 out_indices=(2, ), **kwargs) -> None:
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f'CIFARResNet: depth must be 6n+2 with n >= 1 (20, 32, 44, 56, '
                             f'110, ...), got {depth!r}.')
        n = (depth - 2) // 6
        self.arch_settings = {depth: (BasicBlock, (n, ) * num_stages)}
        super().__init__(depth, stem_channels=stem_channels, base_channels=base_channels,
                         num_stages=num_stages, strides=strides, dilations=dilations,
                         out_indices=out_indices, **kwargs)
