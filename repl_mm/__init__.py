"""repl-mm: Replacement Learning (RepL) for OpenMMLab.

``import repl_mm`` (or ``custom_imports=dict(imports=['repl_mm'])`` in a config) registers the RepL
backbones of every installed framework (mmdet, mmseg, mmpretrain) in that framework's registry,
and repl-mm's hooks and optimizer wrapper in mmengine's. Frameworks that are not installed are
skipped; importing their part (e.g. ``repl_mm.mmseg``) says which package to install.
``repl_mm.core`` needs only PyTorch.
"""
import importlib

from . import core
from .frameworks import FRAMEWORKS, FrameworkMissing
from .version import __version__

try:
    from . import engine  # noqa: F401  (needs mmengine)
except ImportError:  # plain-PyTorch use of repl_mm.core
    engine = None

#: the frameworks whose RepL classes this import registered
REGISTERED = []
if engine is not None:
    for _framework in FRAMEWORKS:
        try:
            importlib.import_module(f'repl_mm.{_framework}')
        except FrameworkMissing:
            continue
        REGISTERED.append(_framework)

__all__ = ['core', 'REGISTERED', '__version__']
