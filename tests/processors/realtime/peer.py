"""A scripted Realtime (GA) peer on 127.0.0.1, for protocol edge cases.

It stands where OpenAI's servers would (a real WebSocket server reached through
the official SDK), and sends exactly the events a test scripts, so timings and
positions can be asserted exactly. ``parley serve`` covers the real behaviour.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from websockets.asyncio.server import ServerConnection, serve

from framework.audio import sine_wave

Script = Callable[["PeerSession", dict[str, Any]], Awaitable[None]]
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}"


class PeerSession:
    """One accepted connection: its received events and helpers to answer."""

    def __init__(self, peer: Peer, ws: ServerConnection, tg: anyio.abc.TaskGroup) -> None:
        self.peer = peer
        self.ws = ws
        self.tg = tg
        self.events: list[dict[str, Any]] = []
        self.headers = dict(ws.request.headers) if ws.request else {}
        self.audio_end_ms = 0

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Received events of type ``kind``."""
        return [e for e in self.events if e.get("type") == kind]

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", _id("event"))
        await self.ws.send(json.dumps(event))

    async def wait_for(self, kind: str, count: int = 1, within: float = 10.0) -> dict[str, Any]:
        """The ``count``-th received event of type ``kind``."""
        with anyio.fail_after(within):
            while len(self.of(kind)) < count:
                await anyio.sleep(0.005)
        return self.of(kind)[count - 1]

    async def error(self, code: str, message: str, event_id: str | None = None) -> None:
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )

    async def response(
        self,
        text: str = "Hello there my friend",
        audio_ms: int = 400,
        *,
        chunk_ms: int = 100,
        delay_s: float = 0.0,
        done: bool = True,
        response_id: str | None = None,
        usage: dict[str, Any] | None = None,
        hold: anyio.Event | None = None,
    ) -> tuple[str, str]:
        """Send an audio response: transcript pieces before their audio, then the done events.

        With ``hold`` the final events wait for it; ``done=False`` stops before them.
        Returns ``(response_id, item_id)``.
        """
        rid, iid = response_id or _id("resp"), _id("item")
        ids = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        await self.send(
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}
        )
        item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress"}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": {**item, "content": []},
            }
        )
        words = text.split()
        chunks = max(1, audio_ms // chunk_ms)
        pcm = sine_wave(220, 24000, audio_ms / 1000, 0.3)
        step = len(pcm) // chunks // 2 * 2
        for n in range(chunks):
            piece = words[-(-n * len(words) // chunks) : -(-(n + 1) * len(words) // chunks)]
            if piece:
                await self.send(
                    {
                        "type": "response.output_audio_transcript.delta",
                        **ids,
                        "delta": " ".join(piece) + " ",
                    }
                )
            data = pcm[n * step :] if n == chunks - 1 else pcm[n * step : (n + 1) * step]
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": base64.b64encode(data).decode(),
                }
            )
            if delay_s:
                await anyio.sleep(delay_s)
        if hold is not None:
            await hold.wait()
        if not done:
            return rid, iid
        await self.send({"type": "response.output_audio.done", **ids})
        await self.send(
            {"type": "response.output_audio_transcript.done", **ids, "transcript": text}
        )
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": rid,
                    "status": "completed",
                    "output": [item],
                    "usage": usage or default_usage(audio_ms),
                },
            }
        )
        return rid, iid

    async def function_call(self, name: str, arguments: str, call_id: str = "call_1") -> str:
        """Send a response that only calls ``name``; returns its response id."""
        rid, iid = _id("resp"), _id("item")
        await self.send({"type": "response.created", "response": {"id": rid}})
        item = {
            "id": iid,
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": {**item, "arguments": ""},
            }
        )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                "response_id": rid,
                "item_id": iid,
                "output_index": 0,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
            }
        )
        await self.send(
            {
                "type": "response.done",
                "response": {
                    "id": rid,
                    "status": "completed",
                    "output": [item],
                    "usage": default_usage(0),
                },
            }
        )
        return rid


def default_usage(audio_out_ms: int) -> dict[str, Any]:
    """A usage block: 100 text + 50 audio tokens in (64 of them cached), audio out at 20/s."""
    audio_out = audio_out_ms // 50
    return {
        "total_tokens": 150 + 5 + audio_out,
        "input_tokens": 150,
        "output_tokens": 5 + audio_out,
        "input_token_details": {
            "text_tokens": 100,
            "audio_tokens": 50,
            "image_tokens": 0,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 5, "audio_tokens": audio_out},
    }


class Peer:
    """``async with Peer(script) as peer:`` serves ``peer.url`` until the block ends.

    ``script(session, event)`` runs for each client event (in the session's
    receive loop: start long work with ``session.tg.start_soon``).
    ``reject_status`` answers every handshake with that HTTP status instead.
    """

    def __init__(self, script: Script | None = None, *, reject_status: int | None = None) -> None:
        self.script = script
        self.reject_status = reject_status
        self.sessions: list[PeerSession] = []
        self.url = ""
        self._server: Any = None

    async def __aenter__(self) -> Peer:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _check(self, connection: Any, request: Any) -> Any:
        if self.reject_status is not None:
            return connection.respond(self.reject_status, "rejected by the test peer\n")
        if not request.path.startswith("/v1/realtime"):
            return connection.respond(404, "not here\n")
        return None

    async def session(self, index: int = 0, within: float = 10.0) -> PeerSession:
        """The ``index``-th accepted session, once it exists."""
        with anyio.fail_after(within):
            while len(self.sessions) <= index:
                await anyio.sleep(0.005)
        return self.sessions[index]

    async def _handle(self, ws: ServerConnection) -> None:
        async with anyio.create_task_group() as tg:
            session = PeerSession(self, ws, tg)
            self.sessions.append(session)
            await session.send(
                {
                    "type": "session.created",
                    "session": {
                        "type": "realtime",
                        "id": _id("sess"),
                        "object": "realtime.session",
                    },
                }
            )
            try:
                async for raw in ws:
                    event = json.loads(raw)
                    session.events.append(event)
                    if event.get("type") == "session.update":
                        await session.send({"type": "session.updated", "session": event["session"]})
                    if self.script is not None:
                        await self.script(session, event)
            finally:
                tg.cancel_scope.cancel()
