"""Shared helpers of the server tests: SDK event checks, speech, a raw JSON client."""

from __future__ import annotations

import base64
import functools
import json
import time
import typing
from typing import Any

import anyio
from pydantic import BaseModel

from pipelines.config import PipelineConfig, load_pipeline_file
from pipelines.shipped import resolve_pipeline


@functools.cache
def _server_models() -> dict[str, type[BaseModel]]:
    from openai.types.realtime.realtime_server_event import RealtimeServerEvent

    union = typing.get_args(typing.get_args(RealtimeServerEvent)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in union}


def check_event(ev: dict[str, Any]) -> BaseModel:
    """Validate a server event against the official SDK's GA model (every required field)."""
    data = {k: v for k, v in ev.items() if not k.startswith("_")}
    model = _server_models().get(data["type"])
    assert model is not None, f"{data['type']!r} is not a GA server event"
    return model.model_validate(data)


def cascade_config(*overrides: str) -> PipelineConfig:
    """The shipped offline cascade (``pipelines/cascade-local.toml``)."""
    return load_pipeline_file(resolve_pipeline("cascade-local"), overrides)


@functools.cache
def speech_24k(text: str) -> bytes:
    """``text`` spoken by Piper's joe voice, as 24 kHz PCM16 (the protocol's format).

    Without Piper's generator noise, so a test hears the same audio in every run.
    """
    from framework.audio import resample
    from processors.tts.piper import PiperTTS, PiperTTSParams

    tts = PiperTTS(PiperTTSParams(noise_scale=0.0, noise_w_scale=0.0))
    tts.load()
    pcm = tts.synthesize(text)
    return resample(pcm, tts.voice_sample_rate, 24000)


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


class RawClient:
    """A raw ``websockets`` client that records every server event (with arrival time)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, **event: Any) -> None:
        """Send a client event."""
        await self.ws.send(json.dumps(event))

    async def recv(self, limit_s: float = 30.0) -> dict[str, Any]:
        """The next server event, checked against the SDK model."""
        with anyio.fail_after(limit_s):
            raw = await self.ws.recv()
        ev = json.loads(raw)
        check_event(ev)
        ev["_t"] = time.monotonic()
        self.events.append(ev)
        return ev

    async def until(self, kind: str, limit_s: float = 60.0) -> list[dict[str, Any]]:
        """Events up to and including the first of type ``kind``."""
        out: list[dict[str, Any]] = []
        with anyio.fail_after(limit_s):
            while True:
                ev = await self.recv(limit_s)
                out.append(ev)
                if ev["type"] == kind:
                    return out

    async def append(self, audio: bytes, chunk_ms: int = 100, pace: float = 0.0) -> None:
        """Append 24 kHz PCM16 in ``chunk_ms`` pieces, sleeping ``pace`` s between them."""
        step = 48 * chunk_ms
        for offset in range(0, len(audio), step):
            await self.send(
                type="input_audio_buffer.append", audio=b64(audio[offset : offset + step])
            )
            if pace:
                await anyio.sleep(pace)


async def connect_session(ws: Any, turn_detection: dict[str, Any] | None) -> RawClient:
    """A client of ``ws`` whose session has ``turn_detection`` and transcription on."""
    client = RawClient(ws)
    await client.until("session.created", limit_s=120)
    await client.send(
        type="session.update",
        session={
            "type": "realtime",
            "audio": {
                "input": {
                    "transcription": {"model": "whisper-1"},
                    "turn_detection": turn_detection,
                }
            },
        },
    )
    await client.until("session.updated")
    return client


async def say(client: RawClient, *pieces: bytes | int, live: bool = False) -> None:
    """Send speech (bytes) and silences (ms); silences always in real time, speech if ``live``.

    Real time is what lets a speculative pause's early transcript reach the
    session before the turn's end does: the STT transcribes live speech as it
    comes, so its final is quick, and the end of the turn waits for silence.
    """
    for piece in pieces:
        if isinstance(piece, int):
            await client.append(bytes(48 * piece), chunk_ms=50, pace=0.05)
        else:
            await client.append(piece, pace=0.1 if live else 0.0)


def event_types(events: list[dict[str, Any]]) -> list[str]:
    """The types of ``events``, in order."""
    return [e["type"] for e in events]


def reply_text(done: dict[str, Any]) -> str:
    """The spoken (or written) text of a ``response.done`` event's response."""
    parts = [c for item in done["response"]["output"] for c in item.get("content", [])]
    return " ".join(p.get("transcript") or p.get("text") or "" for p in parts)


def record_smart_turn(monkeypatch: Any) -> list[float]:
    """Record the real Smart Turn model's verdicts (``monkeypatch``: pytest's fixture)."""
    from processors.vad.smart_turn import SmartTurnModel

    seen: list[float] = []
    predict = SmartTurnModel.predict

    def recording(self: SmartTurnModel, samples: Any) -> float:
        probability = predict(self, samples)
        seen.append(probability)
        return probability

    monkeypatch.setattr(SmartTurnModel, "predict", recording)
    return seen
