"""Which OpenMMLab frameworks repl-mm serves, and a clear error when one is missing."""
import importlib

#: framework module -> the pip requirement that provides it
FRAMEWORKS = {'mmdet': 'mmdet==3.3.0', 'mmseg': 'mmsegmentation==1.2.2',
              'mmpretrain': 'mmpretrain==1.2.0'}


class FrameworkMissing(ImportError):
    """A repl-mm module needs a framework that is not installed."""


def require_framework(name: str) -> None:
    """Import framework ``name`` or raise ``FrameworkMissing`` naming the package to install."""
    try:
        importlib.import_module(name)
    except ImportError as error:
        raise FrameworkMissing(
            f'repl_mm.{name} needs {name}, which is not installed: pip install '
            f'"{FRAMEWORKS[name]}" (or `make install`).') from error
