"""Framework-independent parts of the RepL backbones (they need mmengine, no task framework)."""
from .repl_backbone import (RepLBackboneMixin, RepLResNetMixin, RepLSwinMixin,
                            RepLTransformerMixin, RepLViTMixin)

__all__ = ['RepLBackboneMixin', 'RepLResNetMixin', 'RepLSwinMixin', 'RepLTransformerMixin',
           'RepLViTMixin']
