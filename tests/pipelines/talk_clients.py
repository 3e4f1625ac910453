"""Clients of the live server for tests: the plain protocol, Twilio and Telnyx media stream peers.

Both speak over real WebSockets (aiohttp). The Twilio peer behaves like Twilio's
side of a call: it streams the caller's audio as 20 ms mu-law ``media`` events
at real-time pace, plays the bot's audio through a playout buffer that lags by
``playout_delay_s`` (a phone network's jitter buffer: it holds that much audio while
more arrives, and drains when the stream pauses), echoes each mark once its
playout has reached it, and on ``clear`` drops what it has not played and echoes
the marks still pending, as Twilio does.
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import numpy as np

from framework.audio import alaw_encode, resample, ulaw_decode, ulaw_encode

CHUNK_S = 0.02


def ws_url(http_url: str) -> str:
    return "ws://" + http_url.removeprefix("http://")


def silence(seconds: float, rate: int) -> bytes:
    return bytes(2 * int(rate * seconds))


def level(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0


@asynccontextmanager
async def connect(url: str):
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
        yield socket


@dataclass
class PlainClient:
    """Records what the server sends: audio bytes and events, with arrival times."""

    socket: aiohttp.ClientWebSocketResponse
    ready: dict[str, Any] = field(default_factory=dict)
    audio: bytearray = field(default_factory=bytearray)
    events: list[dict[str, Any]] = field(default_factory=list)
    first_audio_t: float | None = None

    async def wait_ready(self, timeout_s: float = 120) -> dict[str, Any]:
        with anyio.fail_after(timeout_s):
            while True:
                message = await self.socket.receive()
                assert message.type is aiohttp.WSMsgType.TEXT, message
                event = json.loads(message.data)
                if event["type"] == "ready":
                    self.ready = event
                    return event
                self.events.append(event)

    async def receive_all(self) -> None:
        async for message in self.socket:
            if message.type is aiohttp.WSMsgType.BINARY:
                if self.first_audio_t is None:
                    self.first_audio_t = time.monotonic()
                self.audio += message.data
            elif message.type is aiohttp.WSMsgType.TEXT:
                event = json.loads(message.data)
                event["t"] = time.monotonic()
                self.events.append(event)

    async def speak(self, pcm: bytes) -> None:
        """Send ``pcm`` at the input rate in 20 ms messages, at real-time pace."""
        rate = self.ready["input_sample_rate"]
        step = 2 * int(rate * CHUNK_S)
        start = time.monotonic()
        for k, offset in enumerate(range(0, len(pcm), step)):
            await anyio.sleep(max(0.0, start + k * CHUNK_S - time.monotonic()))
            await self.socket.send_bytes(pcm[offset : offset + step])

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


@dataclass
class TwilioPeer:
    """Twilio's side of a Media Streams call (see the module docstring)."""

    socket: aiohttp.ClientWebSocketResponse
    playout_delay_s: float = 0.3
    stream_sid: str = "MZ00000000000000000000000000000001"
    received: list[dict[str, Any]] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    cleared_at: list[float] = field(default_factory=list)
    played_at_clear: list[float] = field(default_factory=list)
    received_at_clear: list[float] = field(default_factory=list)
    played_s: float = 0.0  # bot audio played out so far
    media_s: float = 0.0  # bot audio received so far
    _queue: list[tuple[str, Any]] = field(default_factory=list)  # ("audio", s) / ("mark", name)
    _playing_until: float = 0.0
    _buffered_s: float = 0.0
    _last_media_t: float = 0.0

    def envelope(self) -> dict[str, Any]:
        """What every message of this carrier carries besides its event."""
        return {"streamSid": self.stream_sid}

    def encode(self, narrow: bytes) -> bytes:
        """8 kHz PCM16 as the call's G.711."""
        return ulaw_encode(narrow)

    async def start(self) -> None:
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC0",
                    "streamSid": self.stream_sid,
                    "callSid": "CA0",
                    "tracks": ["inbound"],
                    "customParameters": {},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def _send(self, event: dict[str, Any]) -> None:
        await self.socket.send_str(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        await self.socket.send_str(text)

    async def speak(self, pcm16k: bytes, rate: int = 16000) -> None:
        """Stream ``pcm16k`` as 20 ms mu-law media events at real-time pace."""
        narrow = resample(pcm16k, rate, 8000)
        start = time.monotonic()
        for k, offset in enumerate(range(0, len(narrow), 320)):
            await anyio.sleep(max(0.0, start + k * CHUNK_S - time.monotonic()))
            payload = base64.b64encode(self.encode(narrow[offset : offset + 320])).decode()
            media = {"track": "inbound", "chunk": str(k + 1), "timestamp": "0", "payload": payload}
            await self._send({"event": "media", **self.envelope(), "media": media})

    async def stop(self) -> None:
        await self._send({"event": "stop", **self.envelope(), "stop": {}})

    async def run(self) -> None:
        """Receive and play out until the socket closes."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._play_out)
            async for message in self.socket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                event["t"] = time.monotonic()
                self.received.append(event)
                kind = event["event"]
                if kind == "media":
                    seconds = len(ulaw_decode(base64.b64decode(event["media"]["payload"]))) / 16000
                    self.media_s += seconds
                    self._queue.append(("audio", seconds))
                    self._buffered_s += seconds
                    self._last_media_t = event["t"]
                elif kind == "mark":
                    self._queue.append(("mark", event["mark"]["name"]))
                elif kind == "clear":
                    self.cleared_at.append(event["t"])
                    self.played_at_clear.append(self.played_s)
                    self.received_at_clear.append(self.media_s)
                    pending = [v for k, v in self._queue if k == "mark"]
                    self._queue.clear()
                    self._playing_until = 0.0
                    self._buffered_s = 0.0
                    for name in pending:
                        await self.echo(name)
            tg.cancel_scope.cancel()

    async def _play_out(self) -> None:
        while True:
            await anyio.sleep(0.005)
            now = time.monotonic()
            while self._queue and self._playing_until <= now:
                kind, value = self._queue[0]
                if kind == "audio":
                    flowing = now - self._last_media_t < self.playout_delay_s
                    if flowing and self._buffered_s - value < self.playout_delay_s:
                        break  # hold the jitter buffer's worth while audio flows
                    begin = self._playing_until if now - self._playing_until < 0.03 else now
                    self._playing_until = begin + value
                    self._buffered_s -= value
                    self.played_s += value
                else:
                    self.marks_echoed.append(value)
                    await self.echo(value)
                self._queue.pop(0)

    async def echo(self, name: str) -> None:
        await self._send({"event": "mark", **self.envelope(), "mark": {"name": name}})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e["event"] == kind]


@dataclass
class TelnyxPeer(TwilioPeer):
    """Telnyx's side of a Media Streaming call: the same behaviour, Telnyx's names.

    ``encoding`` is the call's codec, ``PCMU`` or ``PCMA``; the audio Telnyx
    receives is counted by length (one byte per sample either way).
    """

    encoding: str = "PCMA"
    stream_sid: str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"

    def envelope(self) -> dict[str, Any]:
        return {"stream_id": self.stream_sid}

    def encode(self, narrow: bytes) -> bytes:
        return alaw_encode(narrow) if self.encoding == "PCMA" else ulaw_encode(narrow)

    async def start(self) -> None:
        await self._send({"event": "connected", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequence_number": "1",
                "stream_id": self.stream_sid,
                "start": {
                    "user_id": "3E6F995F-0000-0000-0000-000000000000",
                    "call_control_id": "v2:call-0",
                    "call_session_id": "session-0",
                    "from": "+15550000001",
                    "to": "+15550000002",
                    "custom_parameters": {},
                    "media_format": {"encoding": self.encoding, "sample_rate": 8000, "channels": 1},
                },
            }
        )
