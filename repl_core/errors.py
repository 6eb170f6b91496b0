"""Errors repl-mm raises on bad input; each message names the problem and the fix."""
from typing import Any


class ReplError(ValueError):
    """Base class: tools print these as one clear message instead of a traceback.

    Keyword arguments are kept as attributes, so that a program (or a test) reads what the
    message names without parsing it: ``error.iteration``, ``error.last_checkpoint``.
    """

    def __init__(self, message: str = '', **facts: Any) -> None:
        super().__init__(message)
        self.__dict__.update(facts)


class PlanError(ReplError):
    """A replacement plan that breaks a rule; the message names the stage, index and rule."""


class AdapterError(ReplError):
    """Two tensors that no shape adapter can bridge."""


class CheckpointMismatchError(ReplError):
    """A checkpoint made for another replacement plan, granularity or architecture."""
