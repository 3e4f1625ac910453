"""A count to wait for: how the latency runs know that every fed frame has arrived."""

from __future__ import annotations

import anyio

__all__ = ["CountGoal"]


class CountGoal:
    """Wakes whoever waits for a running count to reach a total."""

    def __init__(self) -> None:
        """No one waits yet."""
        self._total = 0
        self._event: anyio.Event | None = None

    def expect(self, count: int, total: int) -> anyio.Event:
        """An event set once the count (``count`` now) reaches ``total``."""
        event = anyio.Event()
        if count >= total:
            event.set()
        else:
            self._total, self._event = total, event
        return event

    def counted(self, count: int) -> None:
        """The count is now ``count``: wake the waiter if it has reached the total."""
        if self._event is not None and count >= self._total:
            self._event.set()
            self._event = None
