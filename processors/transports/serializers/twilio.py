"""Twilio Media Streams (bidirectional, ``<Connect><Stream>``): 8 kHz mu-law in JSON.

Twilio sends ``connected``, ``start`` (the stream's ``streamSid`` and media
format), ``media`` (base64 mu-law, 20 ms each), ``mark`` (echo of a mark we
sent, once the audio before it has played), ``dtmf`` and ``stop``. We send
``media``, ``mark`` and ``clear`` (drop the audio Twilio holds, on an
interruption). See ``docs/twilio.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, ClassVar

from processors.transports.serializers import (
    AudioIn,
    CallEnded,
    CallStarted,
    Incoming,
    MarkIn,
    Message,
    ProtocolError,
    Serializer,
)

__all__ = ["TWILIO_RATE", "TwilioSerializer"]

log = logging.getLogger("parley")
TWILIO_RATE = 8000


class TwilioSerializer(Serializer):
    """One Twilio call: decodes its events, encodes output audio as mu-law media."""

    name: ClassVar[str] = "twilio"
    marks: ClassVar[bool] = True
    waits_for_start: ClassVar[bool] = True

    def __init__(self, *, resample_quality: str = "HQ") -> None:
        """Create it; ``stream_sid`` is known once Twilio's ``start`` has arrived."""
        self.stream_sid = ""
        self.call_sid = ""
        self._quality = resample_quality
        self._resampler: Any = None

    def decode(self, message: Message) -> Incoming | None:
        """The meaning of one Twilio message; ProtocolError names what is wrong."""
        if isinstance(message, bytes):
            raise ProtocolError("twilio: binary message; Media Streams messages are JSON text")
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"twilio: message is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolError("twilio: message is not a JSON object")
        event = data.get("event")
        handler = _DECODERS.get(event) if isinstance(event, str) else None
        if handler is None:
            raise ProtocolError(f"twilio: unknown event {event!r}")
        return handler(self, data)

    def _start(self, data: dict[str, Any]) -> Incoming:
        start = _table(data, "start")
        sid = start.get("streamSid") or data.get("streamSid")
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("twilio: 'start' without a streamSid")
        fmt = start.get("mediaFormat") or {}
        encoding, rate = fmt.get("encoding", "audio/x-mulaw"), fmt.get("sampleRate", TWILIO_RATE)
        if encoding != "audio/x-mulaw" or rate != TWILIO_RATE or fmt.get("channels", 1) != 1:
            raise ProtocolError(
                f"twilio: media format {fmt!r} is not supported; "
                "Media Streams carry audio/x-mulaw at 8000 Hz, mono"
            )
        self.stream_sid, self.call_sid = sid, str(start.get("callSid", ""))
        return CallStarted(sid, self.call_sid)

    def _media(self, data: dict[str, Any]) -> Incoming | None:
        from framework.audio import ulaw_decode

        media = _table(data, "media")
        if media.get("track", "inbound") != "inbound":
            return None  # only the caller's audio is heard
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError("twilio: 'media' without a payload string")
        try:
            mulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"twilio: media payload is not valid base64: {exc}") from None
        return AudioIn(ulaw_decode(mulaw), TWILIO_RATE) if mulaw else None

    def _mark(self, data: dict[str, Any]) -> Incoming:
        name = _table(data, "mark").get("name")
        if not isinstance(name, str):
            raise ProtocolError("twilio: 'mark' without a name")
        return MarkIn(name)

    def _stop(self, data: dict[str, Any]) -> Incoming:
        return CallEnded("the call ended (stop)")

    def _ignored(self, data: dict[str, Any]) -> Incoming | None:
        log.debug("twilio: %s event ignored", data.get("event"))
        return None

    def audio(self, pcm: bytes, sample_rate: int) -> list[Message]:
        """The chunk at 8 kHz, mu-law, base64, in a ``media`` message."""
        from framework.audio import StreamResampler

        if self._resampler is None or self._resampler.from_rate != sample_rate:
            self._resampler = StreamResampler(sample_rate, TWILIO_RATE, 1, self._quality)  # type: ignore[arg-type]
        return self._media_out(self._resampler.process(pcm))

    def flush(self) -> list[Message]:
        """The resampler's tail, at the end of a stretch."""
        return self._media_out(self._resampler.flush()) if self._resampler is not None else []

    def _media_out(self, narrow: bytes) -> list[Message]:
        from framework.audio import ulaw_encode

        if not narrow:
            return []
        payload = base64.b64encode(ulaw_encode(narrow)).decode("ascii")
        return [self._message("media", media={"payload": payload})]

    def mark(self, name: str) -> Message | None:
        """A ``mark`` message: Twilio echoes it once the audio before it has played."""
        return self._message("mark", mark={"name": name})

    def interruption(self) -> list[Message]:
        """``clear``: Twilio drops the audio it holds (and echoes the pending marks)."""
        if self._resampler is not None:
            self._resampler.reset()
        return [self._message("clear")]

    def _message(self, event: str, **fields: Any) -> str:
        return json.dumps({"event": event, "streamSid": self.stream_sid, **fields})


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"twilio: {data.get('event')!r} event without a {key!r} object")
    return value


_DECODERS = {
    "connected": TwilioSerializer._ignored,
    "start": TwilioSerializer._start,
    "media": TwilioSerializer._media,
    "mark": TwilioSerializer._mark,
    "dtmf": TwilioSerializer._ignored,
    "stop": TwilioSerializer._stop,
}
