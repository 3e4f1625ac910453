"""The soak's clients: Realtime-protocol sessions that speak one turn, and the server's health."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import anyio

__all__ = ["SessionOutcome", "health", "http_get", "question_audio", "speak_once"]

CHUNK_BYTES = 4800  # 100 ms of 24 kHz PCM16
LEAD_IN_BYTES = 48 * 300  # 300 ms of silence before the speech
TAIL_BYTES = 48 * 1000  # 1 s of silence after it: server VAD ends the turn


@dataclass(slots=True)
class SessionOutcome:
    """What one client saw."""

    status: str = "not started"
    transcript: str = ""
    audio_bytes: int = 0
    error: str | None = None


def question_audio(text: str) -> bytes:
    """``text`` spoken by Piper (the shipped voice), as 24 kHz PCM16 with silence around it."""
    from framework.audio import resample
    from processors.tts.piper import PiperTTS

    tts = PiperTTS()
    tts.load()
    speech = resample(tts.synthesize(text), tts.voice_sample_rate, 24000)
    return bytes(LEAD_IN_BYTES) + speech + bytes(TAIL_BYTES)


async def _until(ws: Any, kind: str, timeout_s: float, outcome: SessionOutcome) -> dict[str, Any]:
    with anyio.fail_after(timeout_s):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == "error":
                outcome.error = event["error"]["message"]
            elif event["type"] == "response.output_audio.delta":
                outcome.audio_bytes += len(base64.b64decode(event["delta"]))
            elif event["type"] == "response.output_audio_transcript.delta":
                outcome.transcript += event["delta"]
            if event["type"] == kind:
                return event


class Speaker:
    """One session: connect, wait to be let speak, speak a turn, hold until told to close."""

    def __init__(self, url: str, audio: bytes, timeout_s: float) -> None:
        """Speak ``audio`` to the server at ``url`` (``ws://host:port/v1/realtime``)."""
        self.url = url
        self.audio = audio
        self.timeout_s = timeout_s
        self.outcome = SessionOutcome()
        self.connected = anyio.Event()
        self.answered = anyio.Event()
        """Set once the turn is answered, or the session failed."""

    async def run(self, speak_slots: anyio.Semaphore, release: anyio.Event) -> None:
        """Connect, speak when a slot is free, then keep the session open until ``release``."""
        import websockets

        outcome = self.outcome
        try:
            async with websockets.connect(self.url, max_size=None, open_timeout=60) as ws:
                await _until(ws, "session.created", self.timeout_s, outcome)
                outcome.status = "connected"
                self.connected.set()
                async with speak_slots:
                    for offset in range(0, len(self.audio), CHUNK_BYTES):
                        chunk = base64.b64encode(self.audio[offset : offset + CHUNK_BYTES])
                        await ws.send(
                            json.dumps(
                                {"type": "input_audio_buffer.append", "audio": chunk.decode()}
                            )
                        )
                    done = await _until(ws, "response.done", self.timeout_s, outcome)
                outcome.status = str(done["response"]["status"])
                self.answered.set()
                await release.wait()
        except Exception as exc:  # reported in the cycle's row, never raised
            outcome.status = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()
            self.answered.set()


async def speak_once(url: str, audio: bytes, timeout_s: float) -> SessionOutcome:
    """One session on its own: speak a turn, wait for the answer, close."""
    speaker = Speaker(url, audio, timeout_s)
    released = anyio.Event()
    released.set()
    await speaker.run(anyio.Semaphore(1), released)
    return speaker.outcome


async def http_get(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """GET ``path`` from the server (one connection, closed after); (head, body)."""
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        await stream.send(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        with anyio.fail_after(10):
            try:
                while True:
                    data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


async def health(host: str, port: int) -> dict[str, Any]:
    """The server's ``/health`` answer (JSON: status, sessions, max_sessions)."""
    head, body = await http_get(host, port, "/health")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/health answered {head.splitlines()[0]!r}")
    result: dict[str, Any] = json.loads(body)
    return result
