"""Telnyx Media Streaming (bidirectional, ``rtp`` mode): 8 kHz PCMU or PCMA in JSON.

The protocol is :mod:`.media_stream`'s, the same shape as Twilio's; Telnyx's
names: the stream id is ``stream_id`` beside the ``start`` object, the call id
``start.call_control_id``, the format ``start.media_format`` with ``PCMU`` or
``PCMA`` at ``sample_rate`` 8000. Messages to Telnyx carry no stream id (one
socket is one stream). Telnyx also reports an ``error`` event (a code, a title,
a detail): it is logged and the call goes on. Set the bidirectional codec to
the streamed one and the rate to 8000 (``docs/twilio.md``, "Telnyx").
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from processors.transports.serializers import Incoming
from processors.transports.serializers.media_stream import (
    CARRIER_RATE,
    MediaFormat,
    MediaStreamSerializer,
)

__all__ = ["TelnyxSerializer"]

log = logging.getLogger("parley")


class TelnyxSerializer(MediaStreamSerializer):
    """One Telnyx call: decodes its events, encodes output audio as PCMU or PCMA media."""

    name: ClassVar[str] = "telnyx"
    encodings: ClassVar[dict[str, str]] = {"PCMU": "ulaw", "PCMA": "alaw"}

    def stream_ids(self, data: dict[str, Any], start: dict[str, Any]) -> tuple[Any, Any]:
        """``stream_id`` (beside ``start``, or in it) and ``start.call_control_id``."""
        return data.get("stream_id") or start.get("stream_id"), start.get("call_control_id")

    def media_format(self, start: dict[str, Any]) -> MediaFormat:
        """``start.media_format``: ``encoding``, ``sample_rate``, ``channels``."""
        fmt = start.get("media_format") or {}
        return (
            fmt.get("encoding", "PCMU"),
            fmt.get("sample_rate", CARRIER_RATE),
            fmt.get("channels", 1),
        )

    def other_event(self, event: Any, data: dict[str, Any]) -> Incoming | None:
        """Telnyx's ``error`` event is logged and the call goes on; others are unknown."""
        if event != "error":
            return super().other_event(event, data)
        report = data.get("payload") or data.get("error") or {}
        if isinstance(report, dict):
            parts = [str(report[k]) for k in ("code", "title", "detail") if report.get(k)]
            report = " ".join(parts) or "(no detail)"
        log.warning("telnyx: the stream reports an error: %s", report)
        return None
