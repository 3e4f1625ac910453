"""One simulated user: a Realtime-protocol session that speaks corpus turns at real-time pace.

A :class:`Talker` connects, configures its session (server VAD, input
transcription) and streams 24 kHz PCM16 like a microphone: one 20 ms chunk
every 20 ms, the turn's audio when it has one to say and silence otherwise. A
turn's *voice-to-voice* time runs from the moment the chunk holding the last
sample of its speech was sent to the first ``response.output_audio.delta``
received after it. The reply's audio is taken as played from its first delta
on, in real time: the next turn starts ``gap_s`` after both the reply's end
(``response.done``) and the end of its playback, as a user who listens to the
whole reply would, and as the latency benchmark's corpus places its turns.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from benchmarks.latency.corpus import CorpusItem
from framework.audio.resample import resample

__all__ = [
    "CHUNK_S",
    "SILENCE_MS",
    "TalkTurn",
    "Talker",
    "TurnRecord",
    "configure",
    "describe",
    "session_update",
    "turn_of",
]

RATE = 24000
CHUNK_S = 0.02
CHUNK_BYTES = int(RATE * CHUNK_S) * 2
SILENCE_MS = 500
"""Silence that ends a turn under server VAD: the protocol's default."""


def session_update(silence_ms: int = SILENCE_MS) -> dict[str, Any]:
    """The ``session.update`` a talker sends: server VAD, input transcription, 24 kHz PCM."""
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "transcription": {"model": "whisper-1"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": silence_ms},
                }
            },
        },
    }


@dataclass(frozen=True, slots=True)
class TalkTurn:
    """A user turn to speak: 24 kHz PCM16 audio and where its speech ends."""

    label: str
    pcm: bytes = field(repr=False)
    speech_end_s: float
    gap_s: float
    transcript: str


def turn_of(item: CorpusItem, default_gap_s: float = 0.5) -> TalkTurn:
    """A corpus speech item as a :class:`TalkTurn` (resampled to 24 kHz)."""
    if not item.is_speech or item.speech_end_s is None:
        raise ValueError(f"{item.conversation} turn {item.turn} has no speech to play")
    pcm = item.pcm if item.sample_rate == RATE else resample(item.pcm, item.sample_rate, RATE)
    gap = item.gap_s if item.gap_s is not None else default_gap_s
    label = f"{item.conversation}-{item.turn}"
    return TalkTurn(label, pcm, item.speech_end_s, gap, item.transcript)


@dataclass(slots=True)
class TurnRecord:
    """What one turn measured (times in seconds; None when it did not happen)."""

    label: str
    voice_to_voice_s: float | None = None
    status: str = "no reply"
    heard: str = ""
    """The server's transcript of the user's speech."""
    reply: str = ""
    error: str | None = None


class _Turn:
    """The turn being spoken: its chunks and the times the receiver needs."""

    def __init__(self, turn: TalkTurn) -> None:
        self.turn = turn
        self.record = TurnRecord(turn.label)
        self.chunks = deque(
            turn.pcm[i : i + CHUNK_BYTES] for i in range(0, len(turn.pcm), CHUNK_BYTES)
        )
        self.end_chunk = min(
            len(self.chunks) - 1, math.ceil(turn.speech_end_s / CHUNK_S) - 1
        )  # the chunk holding the last speech sample
        self.sent = 0
        self.speech_end_at: float | None = None
        self.first_audio_at: float | None = None
        self.audio_bytes = 0
        self.done = anyio.Event()


class Talker:
    """One session speaking ``turns`` in order; :meth:`run` returns when all are done."""

    def __init__(
        self,
        url: str,
        turns: list[TalkTurn],
        turn_timeout_s: float = 60.0,
        silence_ms: int = SILENCE_MS,
    ) -> None:
        """Speak to the Realtime server at ``url`` (``ws://127.0.0.1:PORT/v1/realtime``)."""
        self.url = url
        self.silence_ms = silence_ms
        self.turns = turns
        self.turn_timeout_s = turn_timeout_s
        self.records: list[TurnRecord] = []
        self.error: str | None = None
        self._current: _Turn | None = None

    async def run(self, start_after_s: float = 0.0) -> list[TurnRecord]:
        """Wait ``start_after_s``, then connect and speak every turn; never raises."""
        import websockets

        await anyio.sleep(start_after_s)
        try:
            async with websockets.connect(self.url, max_size=None, open_timeout=60) as ws:
                await configure(ws, self.turn_timeout_s, self.silence_ms)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._send, ws)
                    tg.start_soon(self._receive, ws)
                    await self._speak_all()
                    tg.cancel_scope.cancel()
        except Exception as exc:  # reported in the records, never raised
            self.error = describe(exc)
        for record in self.records:
            if record.status == "no reply" and record.error is None:
                late = "no audio" if record.voice_to_voice_s is None else "audio but no end"
                record.error = self.error or f"{late} before the turn timeout"
        return self.records

    async def _speak_all(self) -> None:
        for turn in self.turns:
            current = _Turn(turn)
            self.records.append(current.record)
            self._current = current
            with anyio.move_on_after(self.turn_timeout_s):
                await current.done.wait()
            self._current = None
            if current.first_audio_at is not None:  # the reply plays out in real time
                played = current.first_audio_at + current.audio_bytes / (2 * RATE)
                await anyio.sleep(max(0.0, played - time.monotonic()))
            await anyio.sleep(turn.gap_s)

    async def _send(self, ws: Any) -> None:
        """Stream one chunk per 20 ms: the current turn's audio, else silence."""
        silence = bytes(CHUNK_BYTES)
        began = time.monotonic()
        sent = 0
        while True:
            sent += 1
            delay = began + sent * CHUNK_S - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            current = self._current
            speaking = current is not None and bool(current.chunks)
            chunk = current.chunks.popleft() if current is not None and speaking else silence
            payload = base64.b64encode(chunk).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": payload}))
            if current is not None and speaking:
                if current.sent == current.end_chunk:
                    current.speech_end_at = time.monotonic()
                current.sent += 1

    async def _receive(self, ws: Any) -> None:
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            kind = event["type"]
            current = self._current
            if current is None:
                continue
            record = current.record
            if kind == "response.output_audio.delta":
                if current.first_audio_at is None and current.speech_end_at is not None:
                    current.first_audio_at = time.monotonic()
                    record.voice_to_voice_s = current.first_audio_at - current.speech_end_at
                if current.first_audio_at is not None:
                    current.audio_bytes += len(base64.b64decode(event["delta"]))
            elif kind == "response.output_audio_transcript.delta":
                record.reply += event["delta"]
            elif kind == "conversation.item.input_audio_transcription.completed":
                record.heard += (" " if record.heard else "") + event["transcript"]
            elif kind == "error":
                record.error = str(event["error"].get("message"))
            elif kind == "response.done" and current.first_audio_at is not None:
                record.status = str(event["response"]["status"])
                current.done.set()


def describe(exc: BaseException) -> str:
    """``Type: message`` of an error, or of each error inside an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(sorted({describe(inner) for inner in exc.exceptions}))
    return f"{type(exc).__name__}: {exc}"


async def configure(ws: Any, timeout_s: float, silence_ms: int = SILENCE_MS) -> None:
    """Wait for ``session.created``, send :func:`session_update`, wait for ``session.updated``."""
    update = session_update(silence_ms)
    with anyio.fail_after(timeout_s):
        for expected, then in (("session.created", update), ("session.updated", None)):
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "error":
                    raise RuntimeError(f"the server refused the session: {event['error']}")
                if event["type"] == expected:
                    break
            if then is not None:
                await ws.send(json.dumps(then))
