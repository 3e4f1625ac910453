"""The WebSocket link to a Realtime server: connect, send in order, reconnect with back-off.

The official SDK opens the socket (URL, headers, auth). Reconnection is done
here rather than by the SDK's ``on_reconnecting`` because a new socket is a new
server session: the caller must learn about it (``on_open(first=False)``) to
re-send its configuration and replay the conversation before anything else.

Outgoing events go through one ordered outbox drained by a single sender task,
so appends, commits and creates never interleave, and a stalled socket never
blocks the caller (audio is dropped when the outbox is full, control events
never are). Events queued for a session that has gone are discarded.

The API key is read from the environment at :meth:`RealtimeLink.run`, handed
to the SDK client and otherwise never stored, logged or put into a message:
:meth:`RealtimeLink.redact` scrubs it from any text derived from an exception.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from processors.realtime._params import OpenAIRealtimeParams

__all__ = ["ConnectionFailed", "RealtimeLink"]

log = logging.getLogger("parley.realtime")

RECOVERABLE_CLOSE = frozenset({1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 1015})
"""Close codes after which a new session is attempted (1000: the server ended it early)."""

_OUTBOX_SIZE = 2000


class _Redactor(logging.Filter):
    """Scrubs registered secrets from records (websockets logs handshake headers at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = message
            for secret in self.secrets:
                cleaned = cleaned.replace(secret, "***")
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_REDACTOR = _Redactor()
_WS_LOG = logging.getLogger("parley.realtime.websocket")
_WS_LOG.addFilter(_REDACTOR)


def _import_sdk() -> None:
    import openai  # noqa: F401
    import websockets.asyncio.client  # noqa: F401


def _kind(payload: Any) -> str:
    return "an audio append" if isinstance(payload, str) else str(payload.get("type"))


class ConnectionFailed(Exception):
    """The link cannot be (re-)established; the message says why and what to do."""


OnOpen = Callable[[bool], Awaitable[None]]
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]
OnStatus = Callable[[str, dict[str, Any]], Awaitable[None]]


class RealtimeLink:
    """One logical conversation with a Realtime server, over successive sockets."""

    def __init__(
        self,
        params: OpenAIRealtimeParams,
        *,
        on_open: OnOpen,
        on_event: OnEvent,
        on_status: OnStatus,
    ) -> None:
        self.params = params
        self._on_open = on_open
        self._on_event = on_event
        self._on_status = on_status
        self._secret = ""
        self._conn: Any = None
        self.generation = 0
        self.connected = False
        self.closing = False
        self.expired = False
        self.dropped_audio = 0
        self._healthy = False
        self._send, self._recv = anyio.create_memory_object_stream[tuple[int, Any]](_OUTBOX_SIZE)

    # ------------------------------------------------------------------ helpers

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    def describe(self, exc: BaseException) -> str:
        """A one-line, key-free description of ``exc``."""
        return self.redact(f"{type(exc).__name__}: {exc}")

    def _client(self) -> Any:
        from openai import AsyncOpenAI

        kwargs: dict[str, Any] = {"api_key": self._secret, "max_retries": 0}
        if self.params.base_url:
            kwargs["base_url"] = self.params.base_url
        if self.params.websocket_base_url:
            kwargs["websocket_base_url"] = self.params.websocket_base_url
        return AsyncOpenAI(**kwargs)

    # ------------------------------------------------------------------ sending

    def send(self, event: dict[str, Any]) -> bool:
        """Queue a control event for the current session; False if there is none."""
        if not self.connected:
            return False
        try:
            self._send.send_nowait((self.generation, event))
        except anyio.WouldBlock:
            log.error("realtime outbox full: %s not sent", event.get("type"))
            return False
        return True

    def send_audio(self, audio_b64: str) -> bool:
        """Queue an ``input_audio_buffer.append``; dropped (False) when not connected or full."""
        if not self.connected:
            return False
        payload = json.dumps({"type": "input_audio_buffer.append", "audio": audio_b64})
        try:
            self._send.send_nowait((self.generation, payload))
        except anyio.WouldBlock:
            self.dropped_audio += 1
            return False
        return True

    async def _sender(
        self, conn: Any, generation: int, inbox: MemoryObjectReceiveStream[tuple[int, Any]]
    ) -> None:
        from websockets.exceptions import ConnectionClosed

        async with inbox:
            async for gen, payload in inbox:
                if gen != generation:
                    continue  # queued for a session that has gone
                try:
                    if isinstance(payload, str):  # hot path: a pre-serialised audio append
                        send_raw = getattr(conn, "send_raw", None)  # SDK 3.x; older: typed send
                        await (send_raw(payload) if send_raw else conn.send(json.loads(payload)))
                    else:
                        await conn.send(payload)
                except ConnectionClosed:
                    return  # the receive loop sees the close and decides what follows
                except Exception:
                    log.error("realtime: could not send %s", _kind(payload), exc_info=True)

    # -------------------------------------------------------------------- loop

    async def run(self) -> None:
        """Connect, serve events, reconnect on drops; returns when closed.

        Raises :class:`ConnectionFailed` when the link cannot be (re-)established.
        """
        env = self.params.api_key_env
        self._secret = os.environ.get(env, "").strip()
        if not self._secret and (self.params.websocket_base_url or self.params.base_url):
            self._secret = "local"  # a server of our own needs no key; the SDK wants one
        if self._secret:
            _REDACTOR.secrets.add(self._secret)
        else:
            raise ConnectionFailed(
                f"the environment variable {env} is not set: export your OpenAI API key "
                f"there (any non-empty value for a local server), or set api_key_env"
            )
        # Importing the SDK takes most of a second: keep it off the event loop.
        await anyio.to_thread.run_sync(_import_sdk)
        client = self._client()
        attempt = 0
        try:
            while not self._stopped():
                close_code, reason = await self._session(client, first=self.generation == 0)
                if self._stopped():
                    return
                if close_code == -1:  # the handshake failed
                    attempt += 1
                elif close_code not in RECOVERABLE_CLOSE and not self.expired:
                    raise ConnectionFailed(f"the realtime server closed the connection ({reason})")
                else:
                    attempt = 1 if self._healthy else attempt + 1
                if attempt > self.params.reconnect_attempts:
                    raise ConnectionFailed(
                        f"lost the realtime server ({reason}) and {self.params.reconnect_attempts} "
                        "reconnect attempts failed; check the server and the network"
                    )
                delay = min(
                    self.params.reconnect_initial_delay_s * 2 ** (attempt - 1),
                    self.params.reconnect_max_delay_s,
                ) * (1.0 - self.params.reconnect_jitter * random.random())
                await self._on_status(
                    "reconnecting",
                    {
                        "attempt": attempt,
                        "delay_s": round(delay, 3),
                        "close_code": close_code,
                        "reason": reason,
                        "expired": self.expired,
                    },
                )
                await anyio.sleep(delay)
        finally:
            self.connected = False
            await client.close()

    def _stopped(self) -> bool:
        return self.closing

    async def _session(self, client: Any, *, first: bool) -> tuple[int, str]:
        """Serve one socket; returns ``(close code, reason)``, ``-1`` if it never opened."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        self._healthy = False
        try:
            manager = client.realtime.connect(
                model=self.params.model,
                websocket_connection_options={
                    "open_timeout": self.params.connect_timeout_s,
                    "logger": _WS_LOG,  # its handshake log holds the Authorization header
                },
            )
            conn = await manager.enter()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise ConnectionFailed(
                    f"the realtime server refused the API key from {self.params.api_key_env} "
                    f"(HTTP {status}); check the key"
                ) from None
            if status == 404:
                raise ConnectionFailed(
                    "the realtime endpoint was not found (HTTP 404); check base_url / "
                    "websocket_base_url (the SDK appends /realtime)"
                ) from None
            return -1, f"HTTP {status} on connect"
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            return -1, self.describe(exc)
        except Exception as exc:
            if type(exc).__module__.startswith("websockets"):
                return -1, self.describe(exc)
            raise ConnectionFailed(
                f"cannot open the realtime connection: {self.describe(exc)}"
            ) from None
        self.generation += 1
        generation = self.generation
        self.expired = False
        self._conn = conn
        self.connected = True
        code, reason = 1000, "closed"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sender, conn, generation, self._recv.clone())
                await self._on_open(first)
                try:
                    while True:
                        raw = await conn.recv_bytes()
                        await self._dispatch(raw)
                except ConnectionClosed as exc:
                    rcvd = exc.rcvd
                    code = rcvd.code if rcvd is not None else 1006
                    reason = f"close code {code}" + (
                        f" {rcvd.reason!r}" if rcvd and rcvd.reason else ""
                    )
                tg.cancel_scope.cancel()
        finally:
            self.connected = False
            self._conn = None
            with anyio.CancelScope(shield=True):
                try:
                    await conn.close()
                except Exception:  # already closed or broken: nothing left to release
                    log.debug("closing the realtime socket failed", exc_info=True)
        return code, reason

    async def _dispatch(self, raw: bytes | str) -> None:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            preview = raw[:120] if isinstance(raw, str) else raw[:120].decode("utf-8", "replace")
            await self._on_event({"type": "parley.malformed", "raw": preview})
            return
        if event["type"] in ("session.created", "session.updated"):
            self._healthy = True
        await self._on_event(event)

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        self.closing = True
        conn = self._conn
        if conn is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                try:
                    await conn.close()
                except Exception:
                    log.debug("closing the realtime socket failed", exc_info=True)

    def close_outbox(self) -> None:
        """Release the outbox streams (once the link is finished)."""
        self._send.close()
        self._recv.close()
