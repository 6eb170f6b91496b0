"""RepL backbones registered in mmdet's registry (found under mmdet's default scope)."""
from .backbones import RepLResNet

__all__ = ['RepLResNet']
