"""Wire formats of the WebSocket transport: what a message means, what to send.

A :class:`Serializer` turns a received WebSocket message into one
:data:`Incoming` item (audio, a played-audio mark, the start or end of a call)
and turns the pipeline's output (audio chunks, events, an interruption) into
messages. It keeps no connection: the transport owns the socket.

* ``plain`` (:mod:`.plain`): binary PCM16 both ways, JSON text events, for
  programmatic clients (``docs/websocket.md``).
* ``twilio`` (:mod:`.twilio`): Twilio Media Streams, 8 kHz mu-law in JSON
  (``docs/twilio.md``).
* ``telnyx`` (:mod:`.telnyx`): Telnyx Media Streaming, the same protocol shape
  with Telnyx's field names, 8 kHz PCMU or PCMA (``docs/twilio.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from framework import Frame

__all__ = [
    "AudioIn",
    "CallEnded",
    "CallStarted",
    "Incoming",
    "MarkIn",
    "Message",
    "ProtocolError",
    "Serializer",
    "SerializerName",
    "make_serializer",
]

Message = str | bytes
"""A WebSocket message: text (str) or binary (bytes)."""

SerializerName = Literal["plain", "twilio", "telnyx"]


class ProtocolError(ValueError):
    """A received message breaks the protocol; the call goes on without it."""


@dataclass(frozen=True, slots=True)
class AudioIn:
    """Audio from the peer: mono PCM16 at ``sample_rate``."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class MarkIn:
    """The peer has played the audio sent before the mark ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The peer opened its stream (Twilio's ``start``); ``stream_id`` addresses replies."""

    stream_id: str
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The peer ended the stream (Twilio's ``stop``): the session ends."""

    reason: str = ""


Incoming = AudioIn | MarkIn | CallStarted | CallEnded


class Serializer:
    """Base of wire formats; the defaults send nothing and understand nothing."""

    name: ClassVar[str] = ""
    marks: ClassVar[bool] = False
    """True if the peer echoes marks once it has played the audio before them."""
    waits_for_start: ClassVar[bool] = False
    """True if the session starts only once the peer's stream has started (CallStarted)."""

    def decode(self, message: Message) -> Incoming | None:
        """What ``message`` means (None: nothing to act on); ProtocolError if malformed."""
        raise ProtocolError(f"{self.name}: unexpected message")

    def ready(self, input_rate: int, output_rate: int) -> list[Message]:
        """Messages for when the pipeline has started, at these rates."""
        return []

    def audio(self, pcm: bytes, sample_rate: int) -> list[Message]:
        """Messages carrying one chunk of output audio (mono PCM16 at ``sample_rate``)."""
        return []

    def flush(self) -> list[Message]:
        """Messages carrying audio still held (by a resampler) at the end of a stretch."""
        return []

    def mark(self, name: str) -> Message | None:
        """A mark after the audio sent so far (when :attr:`marks`)."""
        return None

    def interruption(self) -> list[Message]:
        """Messages telling the peer to drop the audio it has not played yet."""
        return []

    def event(self, frame: Frame) -> Message | None:
        """An event message for a frame leaving the output transport, if any."""
        return None

    def error(self, message: str) -> Message | None:
        """A message telling the peer about a protocol error, if the protocol has one."""
        return None


def make_serializer(name: SerializerName, *, resample_quality: str = "HQ") -> Serializer:
    """A new serializer (one per connection: some keep per-call state)."""
    if name == "twilio":
        from processors.transports.serializers.twilio import TwilioSerializer

        return TwilioSerializer(resample_quality=resample_quality)
    if name == "telnyx":
        from processors.transports.serializers.telnyx import TelnyxSerializer

        return TelnyxSerializer(resample_quality=resample_quality)
    from processors.transports.serializers.plain import PlainSerializer

    return PlainSerializer()
