"""Errors repl-mm raises on bad input; each message names the problem and the fix."""


class ReplError(ValueError):
    """Base class: tools print these as one clear message instead of a traceback."""


class PlanError(ReplError):
    """A replacement plan that breaks a rule; the message names the stage, index and rule."""


class AdapterError(ReplError):
    """Two tensors that no shape adapter can bridge."""


class CheckpointMismatchError(ReplError):
    """A checkpoint made for another replacement plan, granularity or architecture."""
