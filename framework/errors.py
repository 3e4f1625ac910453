"""Exceptions raised by the engine. Each message says what went wrong and what to do."""

from __future__ import annotations

__all__ = ["CleanupError", "LinkError", "ParleyError", "TaskFinishedError"]


class ParleyError(Exception):
    """Base class of Parley's own errors."""


class LinkError(ParleyError):
    """A processor was linked into a pipeline in a way that cannot work (for example twice)."""


class TaskFinishedError(ParleyError):
    """A frame was queued into a task that has ended or been cancelled."""


class CleanupError(ParleyError):
    """A processor failed while cleaning up after its task; :attr:`processor` names it."""

    def __init__(self, processor: str, error: Exception) -> None:
        super().__init__(f"{processor} failed in cleanup: {type(error).__name__}: {error}")
        self.processor = processor
        self.__cause__ = error
