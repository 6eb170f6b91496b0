"""RepL backbones (and the classic CIFAR ResNet) registered in mmpretrain's registry."""
from repl_mm.frameworks import require_framework

require_framework('mmpretrain')

from .backbones import (RepLCIFARResNet, RepLResNet, RepLResNet_CIFAR,  # noqa: E402
                        RepLSwinTransformer, RepLVisionTransformer)
from .cifar_resnet import CIFARResNet  # noqa: E402

__all__ = [
    'CIFARResNet', 'RepLCIFARResNet', 'RepLResNet', 'RepLResNet_CIFAR', 'RepLSwinTransformer',
    'RepLVisionTransformer'
]
