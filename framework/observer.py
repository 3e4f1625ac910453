"""Observers: read-only hooks that see every frame pushed between processors.

Observers are called synchronously on the push path, so they must be cheap: record
and return. Heavy work (writing files, aggregating reports) belongs after the run
or in a task of the observer's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from framework.frames.base import Direction, Frame

__all__ = ["FrameEndpoint", "Observer"]


@runtime_checkable
class FrameEndpoint(Protocol):
    """Anything a frame can be pushed to: a processor or a pipeline edge."""

    name: str


class Observer:
    """Base class for observers. Override :meth:`on_push`."""

    def on_push(
        self,
        source: FrameEndpoint,
        destination: FrameEndpoint | None,
        frame: Frame,
        direction: Direction,
        timestamp_ns: int,
    ) -> None:
        """Called for every push; ``destination`` is None at the ends of the chain."""
