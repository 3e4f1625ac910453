"""Twilio Media Streams (bidirectional, ``<Connect><Stream>``): 8 kHz mu-law in JSON.

The protocol is :mod:`.media_stream`'s; Twilio's names: the stream id is
``streamSid`` (in ``start`` and on every message, ours included), the call id
``callSid``, the format ``start.mediaFormat`` with ``audio/x-mulaw`` at
``sampleRate`` 8000. See ``docs/twilio.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from processors.transports.serializers.media_stream import (
    CARRIER_RATE,
    MediaFormat,
    MediaStreamSerializer,
)

__all__ = ["TWILIO_RATE", "TwilioSerializer"]

TWILIO_RATE = CARRIER_RATE


class TwilioSerializer(MediaStreamSerializer):
    """One Twilio call: decodes its events, encodes output audio as mu-law media."""

    name: ClassVar[str] = "twilio"
    encodings: ClassVar[dict[str, str]] = {"audio/x-mulaw": "ulaw"}

    def stream_ids(self, data: dict[str, Any], start: dict[str, Any]) -> tuple[Any, Any]:
        """``streamSid`` (in ``start``, or beside it) and ``callSid``."""
        return start.get("streamSid") or data.get("streamSid"), start.get("callSid")

    def media_format(self, start: dict[str, Any]) -> MediaFormat:
        """``start.mediaFormat``: ``encoding``, ``sampleRate``, ``channels``."""
        fmt = start.get("mediaFormat") or {}
        return (
            fmt.get("encoding", "audio/x-mulaw"),
            fmt.get("sampleRate", TWILIO_RATE),
            fmt.get("channels", 1),
        )

    def envelope(self) -> dict[str, Any]:
        """Every message to Twilio names the stream."""
        return {"streamSid": self.stream_id}
