"""RepL backbones registered in mmdet's registry (found under mmdet's default scope)."""
from repl_mm.frameworks import require_framework

require_framework('mmdet')

from .backbones import RepLResNet, RepLSwinTransformer  # noqa: E402

__all__ = ['RepLResNet', 'RepLSwinTransformer']
