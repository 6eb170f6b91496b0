"""repl-mm: Replacement Learning (RepL) for OpenMMLab.

``import repl_mm`` (or ``custom_imports=dict(imports=['repl_mm'])`` in a config) registers the RepL
backbones of every installed framework (mmdet, mmseg, mmpretrain) in that framework's registry,
and repl-mm's hooks and optimizer wrapper in mmengine's. ``repl_mm.core`` needs only PyTorch.
"""
import importlib
import importlib.util

from . import core
from .version import __version__

FRAMEWORKS = {'mmdet': 'mmdet==3.3.0', 'mmseg': 'mmsegmentation==1.2.2',
              'mmpretrain': 'mmpretrain==1.2.0'}

if importlib.util.find_spec('mmengine') is not None:
    from . import engine  # noqa: F401
    for _framework in FRAMEWORKS:
        if importlib.util.find_spec(_framework) is not None:
            importlib.import_module(f'repl_mm.{_framework}')

__all__ = ['core', '__version__']
