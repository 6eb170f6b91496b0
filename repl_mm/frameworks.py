"""Which OpenMMLab frameworks repl-mm serves, and a clear error when one is missing."""
import importlib

#: framework module -> the pip package that provides it
FRAMEWORKS = {'mmdet': 'mmdet', 'mmseg': 'mmsegmentation', 'mmpretrain': 'mmpretrain'}


class FrameworkMissing(ImportError):
    """A repl-mm module needs a framework that is not installed."""


def require_framework(name: str) -> None:
    """Import framework ``name`` or raise ``FrameworkMissing`` naming the package to install."""
    try:
        importlib.import_module(name)
    except ImportError as error:
        raise FrameworkMissing(
            f'repl_mm.{name} needs {name}, which is not installed: pip install {FRAMEWORKS[name]} '
            f'(the versions repl-mm is tested with: requirements/constraints.txt; `make install` '
            f'installs them).') from error
