"""Graceful drain: a worker asked to stop (SIGTERM) lets its conversations finish first.

1. New sessions are refused at once (HTTP 503 with ``Retry-After``) and ``/ready``
   answers 503 with ``"draining": true``, so a balancer sends no more work here.
   ``/health`` stays 200: the worker is alive, only leaving.
2. Running sessions get up to ``drain_timeout_s`` (``--drain-timeout``) to end by
   themselves; the worker exits as soon as the last one has.
3. Any session still running then gets an ``error`` event (type ``server_error``,
   code ``server_shutting_down``) and the WebSocket close code **1012** (service
   restart): the service goes on elsewhere, so the client should reconnect,
   and behind a balancer the new connection lands on another worker. The
   official SDK reconnects on 1012 when given ``on_reconnecting``. (1001, going
   away, is kept for a session that reaches its maximum duration.)
4. The process exits with code 0. A second SIGTERM ends the wait at once (step 3
   follows); SIGINT (Ctrl-C) stops without a drain (close 1001, exit code 130).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from typing import Any, Protocol

import anyio

from pipelines.serve.health import WorkerLoad
from pipelines.serve.protocol import error_event

__all__ = ["DRAIN_CLOSE_CODE", "DRAIN_ERROR_CODE", "Drain", "DrainedSession"]

log = logging.getLogger("parley.serve")
DRAIN_CLOSE_CODE = 1012
DRAIN_ERROR_CODE = "server_shutting_down"
CLOSE_WAIT_S = 5.0
"""How long closed sessions get to wind down after the drain's deadline."""


class DrainedSession(Protocol):
    """What the drain needs of a session (a :class:`~pipelines.serve.session.RealtimeSession`)."""

    def send(self, message: dict[str, Any]) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


class Drain:
    """The drain of one server: its sessions, the request to stop, the deadline."""

    def __init__(self, load: WorkerLoad, timeout_s: float) -> None:
        """Drain the sessions counted by ``load``, waiting ``timeout_s`` at most."""
        self.load = load
        self.timeout_s = timeout_s
        self.sessions: set[DrainedSession] = set()
        self.requested = anyio.Event()
        self._hurry = False
        self._changed = anyio.Event()
        self.closed_by_drain = 0

    def notify(self) -> None:
        """The load changed (a session ended): the drain looks again."""
        self._changed.set()
        self._changed = anyio.Event()

    def request(self) -> None:
        """Start draining (the first call); a later call ends the wait at once."""
        if self.requested.is_set():
            self._hurry = True
        self.load.draining = True
        self.requested.set()
        self.notify()

    async def watch_signals(self, signals: Sequence[signal.Signals]) -> None:
        """Turn ``signals`` (SIGTERM) into :meth:`request`; runs until cancelled."""
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                log.warning(
                    "parley serve: %s: draining %d session(s), %g s at most",
                    signal.Signals(signum).name,
                    self.load.active,
                    self.timeout_s,
                )
                self.request()

    async def run(self) -> None:
        """Wait for a request, then drain; returns when the server may stop."""
        await self.requested.wait()
        with anyio.move_on_after(self.timeout_s):
            await self._until(lambda: self.load.active == 0 or self._hurry)
        leftover = list(self.sessions)
        for session in leftover:
            session.send(
                error_event(
                    "This server is shutting down; connect again to continue on another one.",
                    type_="server_error",
                    code=DRAIN_ERROR_CODE,
                )
            )
            session.close(DRAIN_CLOSE_CODE, "server shutting down")
        self.closed_by_drain = len(leftover)
        if leftover:
            log.warning("parley serve: closed %d session(s) at the drain's end", len(leftover))
        with anyio.move_on_after(CLOSE_WAIT_S):
            await self._until(lambda: self.load.active == 0)

    async def _until(self, done: Any) -> None:
        while not done():
            await self._changed.wait()
