"""repl-mm: Replacement Learning (RepL) for OpenMMLab.

``import repl_mm`` (or ``custom_imports=dict(imports=['repl_mm'])`` in a config) registers the RepL
backbones of every installed framework (mmdet, mmseg, mmpretrain) in that framework's registry,
and repl-mm's hooks and optimizer wrapper in mmengine's. A framework that is not installed is
skipped (importing its part, e.g. ``repl_mm.mmseg``, names the package to install); an error
inside an installed one is raised. The mechanism itself is the package ``repl_core``, which needs
only PyTorch (importing it imports no OpenMMLab package).
"""
import importlib
import importlib.util

from .frameworks import FRAMEWORKS
from .version import __version__

#: the frameworks whose RepL classes this import registered
REGISTERED = []
if importlib.util.find_spec('mmengine') is not None:
    from . import engine  # noqa: F401
    for _framework in FRAMEWORKS:
        if importlib.util.find_spec(_framework) is not None:
            importlib.import_module(f'repl_mm.{_framework}')
            REGISTERED.append(_framework)

__all__ = ['REGISTERED', '__version__']
