"""Telephony media streams over a WebSocket: JSON events carrying 8 kHz G.711 audio.

Twilio Media Streams and Telnyx Media Streaming speak the same protocol shape:
the carrier sends ``connected``, ``start`` (the stream's id and media format),
``media`` (base64 G.711, 20 ms each), ``mark`` (echo of a mark we sent, once the
audio before it has played), ``dtmf`` and ``stop``; we send ``media``, ``mark``
and ``clear`` (drop the audio the carrier holds, on an interruption). They
differ only in names: where the stream id and the media format sit in
``start``, what an encoding is called, and what every outgoing message
carries. :class:`MediaStreamSerializer` is the protocol; its subclasses
(:mod:`.twilio`, :mod:`.telnyx`) give the names.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
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

__all__ = ["CARRIER_RATE", "MediaFormat", "MediaStreamSerializer"]

log = logging.getLogger("parley")
CARRIER_RATE = 8000
"""The rate of G.711 audio on a call."""

MediaFormat = tuple[str, int, int]
"""(encoding as the carrier names it, sample rate, channels) from a ``start`` event."""


class MediaStreamSerializer(Serializer):
    """One carrier call: decodes its events, encodes output audio as G.711 media.

    A subclass names the carrier's fields: :meth:`stream_ids` (stream and call
    id from ``start``), :meth:`media_format`, :attr:`encodings` (the carrier's
    name of mu-law and A-law) and :meth:`envelope` (fields every outgoing
    message carries).
    """

    marks: ClassVar[bool] = True
    waits_for_start: ClassVar[bool] = True
    encodings: ClassVar[dict[str, str]] = {}
    """The carrier's encoding names mapped to ``"ulaw"`` or ``"alaw"``."""
    ignored: ClassVar[frozenset[str]] = frozenset({"connected", "dtmf"})
    """Events understood and not acted on."""

    def __init__(self, *, resample_quality: str = "HQ") -> None:
        """Create it; the stream id is known once the carrier's ``start`` has arrived."""
        self.stream_id = ""
        self.call_id = ""
        self.law = "ulaw"
        self._quality = resample_quality
        self._resampler: Any = None

    # --------------------------------------------------------- the carrier's names

    def stream_ids(self, data: dict[str, Any], start: dict[str, Any]) -> tuple[Any, Any]:
        """The stream id and the call id of a ``start`` event (``start`` is its object)."""
        raise NotImplementedError

    def media_format(self, start: dict[str, Any]) -> MediaFormat:
        """The encoding, rate and channels announced in ``start``."""
        raise NotImplementedError

    def envelope(self) -> dict[str, Any]:
        """Fields every outgoing message carries besides ``event``."""
        return {}

    # --------------------------------------------------------------- decoding

    def decode(self, message: Message) -> Incoming | None:
        """The meaning of one message; ProtocolError names what is wrong."""
        name = self.name
        if isinstance(message, bytes):
            raise ProtocolError(f"{name}: binary message; media stream messages are JSON text")
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"{name}: message is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"{name}: message is not a JSON object")
        event = data.get("event")
        if event in self.ignored:
            log.debug("%s: %s event ignored", name, event)
            return None
        handler = _DECODERS.get(event) if isinstance(event, str) else None
        if handler is None:
            return self.other_event(event, data)
        return handler(self, data)

    def other_event(self, event: Any, data: dict[str, Any]) -> Incoming | None:
        """An event the common protocol does not know: a carrier's own, or an error."""
        raise ProtocolError(f"{self.name}: unknown event {event!r}")

    def _start(self, data: dict[str, Any]) -> Incoming:
        start = self._table(data, "start")
        stream_id, call_id = self.stream_ids(data, start)
        if not isinstance(stream_id, str) or not stream_id:
            raise ProtocolError(f"{self.name}: 'start' without a stream id")
        encoding, rate, channels = self.media_format(start)
        law = self.encodings.get(encoding)
        if law is None or rate != CARRIER_RATE or channels != 1:
            known = ", ".join(self.encodings)
            raise ProtocolError(
                f"{self.name}: media format {encoding!r} at {rate} Hz, {channels} channel(s) "
                f"is not supported; use {known} at {CARRIER_RATE} Hz, mono"
            )
        self.stream_id, self.call_id, self.law = stream_id, str(call_id or ""), law
        return CallStarted(stream_id, self.call_id)

    def _media(self, data: dict[str, Any]) -> Incoming | None:
        from framework.audio import alaw_decode, ulaw_decode

        media = self._table(data, "media")
        if media.get("track", "inbound") != "inbound":
            return None  # only the caller's audio is heard
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError(f"{self.name}: 'media' without a payload string")
        try:
            coded = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"{self.name}: media payload is not valid base64: {exc}") from None
        if not coded:
            return None
        return AudioIn((ulaw_decode if self.law == "ulaw" else alaw_decode)(coded), CARRIER_RATE)

    def _mark(self, data: dict[str, Any]) -> Incoming:
        name = self._table(data, "mark").get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"{self.name}: 'mark' without a name")
        return MarkIn(name)

    def _stop(self, data: dict[str, Any]) -> Incoming:
        return CallEnded("the call ended (stop)")

    def _table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise ProtocolError(
                f"{self.name}: {data.get('event')!r} event without a {key!r} object"
            )
        return value

    # --------------------------------------------------------------- encoding

    def audio(self, pcm: bytes, sample_rate: int) -> list[Message]:
        """The chunk at 8 kHz, G.711, base64, in a ``media`` message."""
        from framework.audio import StreamResampler

        if self._resampler is None or self._resampler.from_rate != sample_rate:
            self._resampler = StreamResampler(sample_rate, CARRIER_RATE, 1, self._quality)  # type: ignore[arg-type]
        return self._media_out(self._resampler.process(pcm))

    def flush(self) -> list[Message]:
        """The resampler's tail, at the end of a stretch."""
        return self._media_out(self._resampler.flush()) if self._resampler is not None else []

    def _media_out(self, narrow: bytes) -> list[Message]:
        from framework.audio import alaw_encode, ulaw_encode

        if not narrow:
            return []
        coded = (ulaw_encode if self.law == "ulaw" else alaw_encode)(narrow)
        payload = base64.b64encode(coded).decode("ascii")
        return [self._message("media", media={"payload": payload})]

    def mark(self, name: str) -> Message | None:
        """A ``mark`` message: the carrier echoes it once the audio before it has played."""
        return self._message("mark", mark={"name": name})

    def interruption(self) -> list[Message]:
        """``clear``: the carrier drops the audio it holds (and echoes the pending marks)."""
        if self._resampler is not None:
            self._resampler.reset()
        return [self._message("clear")]

    def _message(self, event: str, **fields: Any) -> str:
        return json.dumps({"event": event, **self.envelope(), **fields})


_DECODERS: dict[str, Callable[[MediaStreamSerializer, dict[str, Any]], Incoming | None]] = {
    "start": MediaStreamSerializer._start,
    "media": MediaStreamSerializer._media,
    "mark": MediaStreamSerializer._mark,
    "stop": MediaStreamSerializer._stop,
}
