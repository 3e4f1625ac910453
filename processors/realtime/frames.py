"""Frames specific to realtime (speech-to-speech) processors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from framework.frames.base import SystemFrame

__all__ = ["RealtimeConnectionFrame"]

ConnectionState = Literal["connected", "reconnecting", "reconnected", "failed"]


@dataclass(slots=True, kw_only=True)
class RealtimeConnectionFrame(SystemFrame):
    """The link to the realtime server changed state; pushed downstream for observers.

    A dedicated frame rather than an :class:`~framework.frames.ErrorFrame`, so
    that a task whose error policy ends the conversation on errors survives a
    reconnect. Only giving up (``failed``) is also reported as a fatal error.

    ``reconnecting`` carries the attempt number, the back-off delay and the close
    code of the drop (``-1``: the connection could not be opened); ``expired``
    tells a session that hit the server's maximum duration from a network drop.
    ``reconnected`` means the new session was configured and the conversation
    replayed (``replayed`` items).
    """

    state: ConnectionState
    processor: str = ""
    attempt: int = 0
    delay_s: float = 0.0
    close_code: int | None = None
    reason: str = ""
    expired: bool = False
    replayed: int = 0
