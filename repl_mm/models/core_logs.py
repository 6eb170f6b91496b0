"""``repl_core`` logs through Python's ``logging``; under OpenMMLab its lines go to the run's log.

The mechanism knows nothing of mmengine, so it writes to the ``repl_core`` logger (what a replaced
block's load did, how an optimizer steps the coefficients). ``route_core_logs`` forwards that
logger's records to mmengine's current logger, so they reach the text log and the console with
the rest of the run, once each: once routed (``import repl_mm``), the ``repl_core`` logger no
longer propagates to Python's root logger. Without the plugin (plain PyTorch) its records go
where Python's logging sends them; listen on the ``repl_core`` logger.
"""
import logging

from mmengine.logging import print_log


class MMEngineLogHandler(logging.Handler):
    """Passes each record on to mmengine's current logger (``print_log(logger='current')``)."""

    def emit(self, record: logging.LogRecord) -> None:
        print_log(record.getMessage(), logger='current', level=record.levelno)


def route_core_logs() -> None:
    """Send the ``repl_core`` logger's records (INFO and up) to mmengine's current logger, in
    place of Python's root logger; once per process."""
    core = logging.getLogger('repl_core')
    if not any(isinstance(handler, MMEngineLogHandler) for handler in core.handlers):
        core.addHandler(MMEngineLogHandler())
        core.setLevel(logging.INFO)
        core.propagate = False
