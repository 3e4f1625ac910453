"""Lifecycle frames: start, end, cancel, interruption, errors and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framework.frames.base import ControlFrame, SystemFrame, Uninterruptible

__all__ = [
    "CancelFrame",
    "EndFrame",
    "ErrorFrame",
    "InterruptionFrame",
    "MetricSample",
    "MetricsFrame",
    "StartFrame",
]


@dataclass(slots=True, kw_only=True)
class StartFrame(SystemFrame):
    """First frame through a pipeline; carries the task-wide audio settings."""

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    allow_interruptions: bool = True


@dataclass(slots=True, kw_only=True)
class EndFrame(Uninterruptible, ControlFrame):
    """Graceful end: travels behind all queued work, and the task stops when it has drained.

    Uninterruptible: an interruption never discards a queued End.
    """

    reason: str = ""


@dataclass(slots=True, kw_only=True)
class CancelFrame(SystemFrame):
    """Immediate stop: passes every queue, and the task stops without draining."""

    reason: str = ""


@dataclass(slots=True, kw_only=True)
class InterruptionFrame(SystemFrame):
    """The user barged in: every processor drops queued interruptible frames and in-flight work."""


@dataclass(slots=True, kw_only=True)
class ErrorFrame(SystemFrame):
    """A processor failed. Travels upstream to the task, whose error policy decides what follows.

    ``code`` carries a machine-readable code when the source has one (for example
    a realtime server's error code); ``fatal`` asks the task to stop whatever its policy.
    """

    message: str
    processor: str = ""
    code: str = ""
    fatal: bool = False
    exception: BaseException | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True, frozen=True)
class MetricSample:
    """One measurement: ``name`` (such as ``ttfb``) of ``processor``, in ``unit``."""

    processor: str
    name: str
    value: float
    unit: str = "s"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(slots=True, kw_only=True)
class MetricsFrame(SystemFrame):
    """Measurements emitted by processors (time to first byte, token usage, CPU time)."""

    samples: list[MetricSample] = field(default_factory=list)
