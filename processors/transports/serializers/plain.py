"""The plain WebSocket protocol: binary PCM16 both ways, JSON text messages for events.

The server speaks first, once the pipeline has started::

    {"type": "ready", "input_sample_rate": 16000, "output_sample_rate": 24000,
     "encoding": "pcm_s16le", "channels": 1}

From then on the client sends binary messages of mono PCM16 (little-endian) at
``input_sample_rate``, any length, at the pace it records; the server sends the
bot's audio the same way at ``output_sample_rate``, paced in real time, in
20 ms messages. Events arrive as JSON text messages (see ``docs/websocket.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from framework import Frame
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.transports.serializers import AudioIn, Incoming, Message, ProtocolError, Serializer

__all__ = ["PlainSerializer"]

_EVENTS: dict[type[Frame], Callable[[Any], dict[str, Any]]] = {
    UserStartedSpeakingFrame: lambda f: {"type": "user_started_speaking"},
    UserStoppedSpeakingFrame: lambda f: {"type": "user_stopped_speaking"},
    InterimTranscriptionFrame: lambda f: {"type": "transcript", "final": False, "text": f.text},
    TranscriptionFrame: lambda f: {"type": "transcript", "final": True, "text": f.text},
    BotStartedSpeakingFrame: lambda f: {"type": "bot_started_speaking"},
    BotStoppedSpeakingFrame: lambda f: {
        "type": "bot_stopped_speaking",
        "interrupted": f.interrupted,
        "played_s": round(f.played_s, 3),
    },
    # A TTS text frame leaves the output transport once its audio has played:
    # these are the words the user heard (cut short by an interruption).
    TTSTextFrame: lambda f: {"type": "bot_text", "text": f.text},
}


class PlainSerializer(Serializer):
    """Binary PCM16 at the pipeline's rates, JSON events; see the module docstring."""

    name: ClassVar[str] = "plain"

    def __init__(self) -> None:
        """Create it; the input rate is known once the pipeline has started."""
        self.input_rate = 0

    def decode(self, message: Message) -> Incoming | None:
        """Binary: audio at the input rate. Text: no client message is defined yet."""
        if isinstance(message, bytes):
            if not self.input_rate:
                raise ProtocolError(
                    "audio before the 'ready' message: wait for it, it gives the sample rate"
                )
            if len(message) % 2:
                raise ProtocolError(
                    f"binary message of {len(message)} bytes: PCM16 needs an even number"
                )
            return AudioIn(message, self.input_rate)
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"text message is not JSON: {exc}") from None
        kind = data.get("type") if isinstance(data, dict) else None
        raise ProtocolError(
            f"unknown message type {kind!r}: clients send audio as binary messages only"
        )

    def ready(self, input_rate: int, output_rate: int) -> list[Message]:
        """The ``ready`` message announcing the rates of both directions."""
        self.input_rate = input_rate
        return [
            _json(
                type="ready",
                input_sample_rate=input_rate,
                output_sample_rate=output_rate,
                encoding="pcm_s16le",
                channels=1,
            )
        ]

    def audio(self, pcm: bytes, sample_rate: int) -> list[Message]:
        """The chunk as one binary message."""
        return [pcm]

    def interruption(self) -> list[Message]:
        """``{"type": "interruption"}``: the client drops the audio it has not played."""
        return [_json(type="interruption")]

    def event(self, frame: Frame) -> Message | None:
        """The JSON event for speaking, transcript and heard-text frames."""
        make = _EVENTS.get(type(frame))
        return _json(**make(frame)) if make is not None else None

    def error(self, message: str) -> Message | None:
        """``{"type": "error", "message": ...}``."""
        return _json(type="error", message=message)


def _json(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))
