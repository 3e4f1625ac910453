"""Everything the realtime stage knows about its conversation, in one object.

:class:`ClientState` is shared by the stage (:mod:`processors.realtime.openai`:
the pipeline side, the connection's life) and its server-event handlers
(:mod:`processors.realtime._events`): neither keeps state of its own, so what
a session can be in is read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from processors.pricing import RealtimeUsage
from processors.realtime._input import RATE, AudioUplink
from processors.realtime._state import History, Playback, Responses

if TYPE_CHECKING:
    from processors.realtime._connection import RealtimeLink
    from processors.realtime._output import ReplyWriter
    from processors.toolset import ToolTask

__all__ = ["ClientState"]


@dataclass(eq=False)
class ClientState:
    """The state of one realtime conversation, across reconnects."""

    input: AudioUplink
    """The user's audio on its way to the server (turns, pre-roll, the clock)."""
    history: History = field(default_factory=History)
    """The conversation as the user experienced it, replayed after a reconnect."""
    playback: Playback = field(default_factory=Playback)
    """Which assistant audio was pushed and played: where to truncate."""
    responses: Responses = field(default_factory=Responses)
    """The server's one active response, and requests waiting for it."""
    link: RealtimeLink | None = None
    """The connection (None before the Start frame)."""
    writer: ReplyWriter | None = None
    """Turns the current response's deltas into frames."""
    tool_tasks: dict[str, ToolTask] = field(default_factory=dict)
    """Tool calls running, by call id."""
    usage: RealtimeUsage = field(default_factory=RealtimeUsage)
    """Token counts and cost of every response so far."""
    transcription_cost_usd: float = 0.0
    interim: dict[str, str] = field(default_factory=dict)
    """The interim transcript so far, by user item id."""
    cancel_ids: set[str] = field(default_factory=set)
    """Event ids of ``response.cancel`` requests whose errors are expected."""
    cancel_on_create: bool = False
    """A barge-in came while a response was requested: cancel it when it is created."""
    ended: bool = False
    """The End (or Cancel) frame went by: nothing more is pushed or sent."""
    lost: bool = False
    """The connection dropped and is being re-established."""
    cut_response: bool = False
    """The dropped connection cut a response the user was hearing."""
    bot_speaking: bool = False
    self_interrupting: bool = False
    """The stage is broadcasting an interruption it decided on (server-side barge-in)."""
    allow_interruptions: bool = True
    out_rate: int = RATE
    ttfa_ref_ns: int = 0
    """When the last request (or end of user speech) was made: ``ttfa`` counts from it."""
    next_id: int = 0

    def event_id(self) -> str:
        """A new client event id."""
        self.next_id += 1
        return f"parley_{self.next_id}"
