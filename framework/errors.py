"""Exceptions raised by the engine. Each message says what went wrong and what to do."""

from __future__ import annotations

__all__ = ["LinkError", "ParleyError", "TaskFinishedError"]


class ParleyError(Exception):
    """Base class of Parley's own errors."""


class LinkError(ParleyError):
    """A processor was linked into a pipeline in a way that cannot work (for example twice)."""


class TaskFinishedError(ParleyError):
    """A frame was queued into a task that has ended or been cancelled."""
