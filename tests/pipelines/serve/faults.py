"""A server connection that misbehaves on purpose, so clients' recovery can be tested.

``running_server(config, wrap_connection=faults(close_after_deltas=3))`` serves
every session through a :class:`FaultyConnection`: it trickles the delta events
and drops the connection in the middle of a response.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio

from pipelines.serve.session import Connection

__all__ = ["DELTAS", "FaultyConnection", "faults"]

DELTAS = frozenset(
    {
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
    }
)


class FaultyConnection:
    """Wraps a session's connection: delays deltas, closes after some audio deltas."""

    def __init__(
        self,
        connection: Connection,
        *,
        close_after_deltas: int | None = None,
        close_code: int = 1011,
        delta_delay_s: float = 0.0,
    ) -> None:
        """Close with ``close_code`` right after ``close_after_deltas`` audio deltas
        (counted per connection); wait ``delta_delay_s`` before each delta event."""
        self._connection = connection
        self.close_after_deltas = close_after_deltas
        self.close_code = close_code
        self.delta_delay_s = delta_delay_s
        self.audio_deltas_sent = 0

    async def send(self, message: str) -> None:
        """Send a server event, late if it is a delta; maybe drop the connection after it."""
        kind = json.loads(message)["type"]
        if self.delta_delay_s and kind in DELTAS:
            await anyio.sleep(self.delta_delay_s)
        await self._connection.send(message)
        if kind == "response.output_audio.delta":
            self.audio_deltas_sent += 1
            if self.close_after_deltas and self.audio_deltas_sent >= self.close_after_deltas:
                await self._connection.close(self.close_code, "test fault: close_after_deltas")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""
        await self._connection.close(code, reason)

    def __aiter__(self) -> Any:
        """The client's messages."""
        return self._connection.__aiter__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def faults(**settings: Any) -> Callable[[Connection], Connection]:
    """A ``wrap_connection`` hook that serves each session through a :class:`FaultyConnection`."""
    return lambda connection: FaultyConnection(connection, **settings)
