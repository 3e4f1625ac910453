"""The WebRTC transport's settings: the ``[transport]`` table for ``backend = "webrtc"``.

A module of its own so that the modules of the transport (the peer link, the
signalling server, the transport itself) all depend on it and not on each other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from processors.transports.base import OutputTransportParams

__all__ = ["WebRTCTransportParams"]


class WebRTCTransportParams(OutputTransportParams):
    """Settings of the ``[transport]`` table for ``backend = "webrtc"``."""

    media_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="End the session when no audio has arrived from the peer for this long "
        "(a browser sends audio continuously, silence included).",
    )
    jitter_ms: float = Field(
        default=20.0,
        ge=0,
        le=200,
        description="How long an incoming audio packet that arrives after a gap waits for "
        "the missing ones before they count as lost (and are heard as silence). Packets "
        "in order are decoded as they arrive, so on a clean link this adds nothing.",
    )
    ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs for the server's peer connections; none is needed on "
        "this machine or a LAN.",
    )
    max_sessions: int = Field(
        default=8, ge=1, description="Concurrent browser sessions; more get HTTP 503."
    )
    opus_bitrate: int = Field(
        default=32000, ge=6000, le=510000, description="Bits per second of the bot's Opus audio."
    )
    opus_complexity: int = Field(
        default=5,
        ge=0,
        le=10,
        description="Opus encoder complexity: higher sounds better and costs more CPU "
        "(about 0.1 ms per 20 ms frame at 5 on this project's machine, 0.2 ms at 10).",
    )
    opus_application: Literal["audio", "voip", "lowdelay"] = Field(
        default="audio",
        description="Opus encoder mode for the bot's audio. 'audio' (the default) codes "
        "32 kbps speech in the MDCT mode, about 55 us per 20 ms frame on this project's "
        "machine; 'voip' adds the speech codec's analysis (about 140 us) and suits low "
        "bitrates and noisy microphones more than a clean synthetic voice; 'lowdelay' "
        "is the MDCT mode alone. Whisper heard the same words after either: "
        "benchmarks/RESULTS.md, 'WebRTC: the bot's Opus mode'.",
    )
    max_queued_ms: float = Field(
        default=140.0,
        ge=20,
        description="Audio the outgoing track may hold ahead of the wire; the output's "
        "pacing keeps it near one chunk (it catches up at most max_lag_ms after a stall), "
        "and older audio is dropped past this.",
    )
