"""Framework-independent parts of the RepL backbones (they need mmengine, no task framework)."""
from .core_logs import route_core_logs
from .plain_twin import plain_model_cfg
from .repl_backbone import (RepLBackboneMixin, RepLResNetMixin, RepLSwinMixin,
                            RepLTransformerMixin, RepLViTMixin, repl_settings_of)

route_core_logs()

__all__ = ['RepLBackboneMixin', 'RepLResNetMixin', 'RepLSwinMixin', 'RepLTransformerMixin',
           'RepLViTMixin', 'plain_model_cfg', 'repl_settings_of']
