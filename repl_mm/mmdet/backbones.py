"""mmdet backbones with RepL: thin subclasses of mmdet's own classes."""
from mmdet.models.backbones import ResNet, SwinTransformer
from mmdet.registry import MODELS

from repl_mm.models import RepLResNetMixin, RepLSwinMixin


@MODELS.register_module()
class RepLResNet(RepLResNetMixin, ResNet):
    """mmdet ``ResNet`` whose planned blocks are replaced; all ResNet arguments plus ``repl``.

    See ``repl_mm.models.RepLBackboneMixin`` for ``repl``. ``with_cp``, ``frozen_stages``,
    ``norm_eval`` and ``init_cfg`` (including ``Pretrained``) behave as in ``ResNet``; a plain
    pretrained checkpoint loads, its weights for replaced blocks ignored with one log line.
    """


@MODELS.register_module()
class RepLSwinTransformer(RepLSwinMixin, SwinTransformer):
    """mmdet ``SwinTransformer`` with RepL blocks (``repl_mm.models.RepLSwinMixin``). For Swin-T
    (depths 2, 2, 6, 2) the default plan replaces ``stages.2`` blocks 1 and 3."""
