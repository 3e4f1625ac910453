"""The frame base classes: kinds, direction, identity and timestamps.

Every frame is a slotted dataclass with a process-wide unique ``id`` and a
``timestamp_ns`` read from the monotonic clock when the frame is created. The
class a frame derives from decides how it travels through a pipeline:

* :class:`SystemFrame` frames are never queued behind data and never dropped by
  an interruption (input audio, speaking events, interruptions, errors).
* :class:`DataFrame` frames are processed in order and are dropped by an
  interruption unless their class is marked :attr:`Frame.uninterruptible`.
* :class:`ControlFrame` frames travel in order with the data (end of stream,
  response boundaries, settings) and follow the same interruption rule.
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "ControlFrame",
    "DataFrame",
    "Direction",
    "Frame",
    "FrameKind",
    "SystemFrame",
    "Uninterruptible",
]

_ids = itertools.count(1)


def _next_id() -> int:
    return next(_ids)


class Direction(enum.IntEnum):
    """The way a frame travels: towards the output or back towards the input."""

    DOWNSTREAM = 0
    UPSTREAM = 1


class FrameKind(enum.IntEnum):
    """How a frame is scheduled; see the module docstring."""

    SYSTEM = 0
    DATA = 1
    CONTROL = 2


@dataclass(slots=True, kw_only=True)
class Frame:
    """Base of every frame.

    ``id`` and ``timestamp_ns`` are filled in automatically; pass them only when
    replaying recorded frames.
    """

    kind: ClassVar[FrameKind]
    uninterruptible: ClassVar[bool] = False

    id: int = field(default_factory=_next_id)
    timestamp_ns: int = field(default_factory=time.monotonic_ns)

    @property
    def name(self) -> str:
        """A short human-readable name such as ``OutputAudioFrame#12``."""
        return f"{type(self).__name__}#{self.id}"

    @property
    def is_system(self) -> bool:
        """True for frames that bypass queues and survive interruptions."""
        return self.kind is FrameKind.SYSTEM

    @property
    def droppable(self) -> bool:
        """True when an interruption discards this frame if it is still queued."""
        return self.kind is not FrameKind.SYSTEM and not self.uninterruptible


@dataclass(slots=True, kw_only=True)
class SystemFrame(Frame):
    """A frame that is handled at once, ahead of any queued data."""

    kind: ClassVar[FrameKind] = FrameKind.SYSTEM


@dataclass(slots=True, kw_only=True)
class DataFrame(Frame):
    """Content (audio, text, results) processed in order and interruptible."""

    kind: ClassVar[FrameKind] = FrameKind.DATA


@dataclass(slots=True, kw_only=True)
class ControlFrame(Frame):
    """Stream structure (end, response boundaries, settings) kept in order with data."""

    kind: ClassVar[FrameKind] = FrameKind.CONTROL


class Uninterruptible:
    """Mixin marking a data or control frame class as surviving interruptions.

    Put it first in the bases: ``class Result(Uninterruptible, DataFrame)``.
    """

    __slots__ = ()
    uninterruptible: ClassVar[bool] = True
