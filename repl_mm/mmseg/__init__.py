"""RepL backbones registered in mmseg's registry (found under mmseg's default scope)."""
from repl_mm.frameworks import require_framework

require_framework('mmseg')

from .backbones import (RepLResNet, RepLResNetV1c, RepLSwinTransformer,  # noqa: E402
                        RepLVisionTransformer)

__all__ = ['RepLResNet', 'RepLResNetV1c', 'RepLSwinTransformer', 'RepLVisionTransformer']
