"""Observers: read-only hooks that see every frame pushed between processors.

Observers are called synchronously on the push path, so they must be cheap: record
and return. Heavy work (writing files, aggregating reports) belongs after the run
or in a task of the observer's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from framework.frames.base import Direction, Frame

__all__ = ["FrameEndpoint", "Observer"]


@runtime_checkable
class FrameEndpoint(Protocol):
    """Anything a frame can be pushed to: a processor or a pipeline edge."""

    name: str


class Observer:
    """Base class for observers: override :meth:`on_push`, and :meth:`on_event` for other events."""

    def on_push(
        self,
        source: FrameEndpoint,
        destination: FrameEndpoint | None,
        frame: Frame,
        direction: Direction,
        timestamp_ns: int,
    ) -> None:
        """Called for every push; ``destination`` is None at the ends of the chain."""

    def on_event(
        self,
        source: FrameEndpoint,
        event: str,
        timestamp_ns: int,
        fields: Mapping[str, Any],
    ) -> None:
        """Called for events that are not frames, reported with ``Processor.report_event``.

        For example an output transport reports the play time of a reply's first sample.
        """
