"""RepL backbones (and the classic CIFAR ResNet) registered in mmpretrain's registry."""
from .backbones import RepLCIFARResNet, RepLResNet, RepLResNet_CIFAR
from .cifar_resnet import CIFARResNet

__all__ = ['CIFARResNet', 'RepLCIFARResNet', 'RepLResNet', 'RepLResNet_CIFAR']
