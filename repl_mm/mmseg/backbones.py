"""mmseg backbones with RepL: thin subclasses of mmseg's own classes."""
from mmseg.models.backbones import ResNet, ResNetV1c, SwinTransformer, VisionTransformer
from mmseg.registry import MODELS

from repl_mm.models import RepLResNetMixin, RepLSwinMixin, RepLViTMixin


@MODELS.register_module()
class RepLResNet(RepLResNetMixin, ResNet):
    """mmseg ``ResNet`` whose planned blocks are replaced; all its arguments plus ``repl``
    (``repl_mm.models.RepLBackboneMixin``)."""


@MODELS.register_module()
class RepLResNetV1c(RepLResNetMixin, ResNetV1c):
    """mmseg ``ResNetV1c`` (deep stem; dilated stages in the Cityscapes configs) with RepL.

    Replaced blocks keep their own dilation; their kernels come from neighbours of the same
    stage, so with the default plan every synthesised kernel has the dilation it is used with.
    """


@MODELS.register_module()
class RepLSwinTransformer(RepLSwinMixin, SwinTransformer):
    """mmseg ``SwinTransformer`` with RepL blocks (``repl_mm.models.RepLSwinMixin``)."""


@MODELS.register_module()
class RepLVisionTransformer(RepLViTMixin, VisionTransformer):
    """mmseg ``VisionTransformer`` with RepL layers (``repl_mm.models.RepLViTMixin``)."""
