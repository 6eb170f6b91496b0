"""RepL backbones registered in mmseg's registry (found under mmseg's default scope)."""
from .backbones import RepLResNet, RepLResNetV1c

__all__ = ['RepLResNet', 'RepLResNetV1c']
