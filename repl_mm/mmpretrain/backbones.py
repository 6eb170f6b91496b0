"""mmpretrain backbones with RepL: thin subclasses of mmpretrain's own classes."""
from mmpretrain.models.backbones import (ResNet, ResNet_CIFAR, SwinTransformer,
                                         VisionTransformer)
from mmpretrain.registry import MODELS

from repl_mm.models import RepLResNetMixin, RepLSwinMixin, RepLViTMixin
from .cifar_resnet import CIFARResNet


@MODELS.register_module()
class RepLResNet(RepLResNetMixin, ResNet):
    """mmpretrain ``ResNet`` with RepL (``repl_mm.models.RepLBackboneMixin``). Replaced
    blocks keep their stochastic-depth rate (``drop_path_rate``)."""


@MODELS.register_module()
class RepLResNet_CIFAR(RepLResNetMixin, ResNet_CIFAR):
    """mmpretrain ``ResNet_CIFAR`` (ImageNet depths, CIFAR stem) with RepL."""


@MODELS.register_module()
class RepLCIFARResNet(RepLResNetMixin, CIFARResNet):
    """The classic CIFAR ResNet (depth 6n+2) with RepL; ResNet-32's default plan replaces
    blocks 1 and 3 of each stage: 6 of 15 blocks."""


@MODELS.register_module()
class RepLSwinTransformer(RepLSwinMixin, SwinTransformer):
    """mmpretrain ``SwinTransformer`` with RepL blocks (``repl_mm.models.RepLSwinMixin``)."""


@MODELS.register_module()
class RepLVisionTransformer(RepLViTMixin, VisionTransformer):
    """mmpretrain ``VisionTransformer`` with RepL layers (``repl_mm.models.RepLViTMixin``). For
    ViT-B (12 layers) the default plan replaces layers 1, 3, 5, 7 and 9."""
