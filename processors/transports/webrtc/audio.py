"""The WebRTC transport's audio: the bot's outgoing Opus track, and decoded frames as PCM.

:class:`OutgoingAudio` is the track a peer connection sends: 20 ms Opus packets
from a short queue of mono PCM16. The output transport writes each chunk when it
is due; a client's microphone uses the same track, keeping time itself.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, CodecContext, Packet

__all__ = ["OPUS_RATES", "WIRE_RATE", "OutgoingAudio", "decoded_mono"]

WIRE_RATE = 48000
"""Opus's clock rate: audio arrives decoded at 48 kHz, and RTP time counts at 48 kHz."""
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""Rates the Opus encoder takes as they are, without resampling."""
_FRAME_NS = 20_000_000
_SETTLED = 15  # silent frames after which the encoder has forgotten what it heard before
_TIME_BASE = fractions.Fraction(1, WIRE_RATE)


def decoded_mono(frame: object) -> tuple[bytes, int]:
    """Mono PCM16 and its rate from a frame aiortc decoded (packed s16, any channels).

    A browser's microphone travels as mono Opus, which aiortc decodes to two equal
    channels: the first one is the audio.
    """
    if not isinstance(frame, AudioFrame) or frame.format.name != "s16":
        raise TypeError(f"expected a packed s16 audio frame, got {frame!r}")
    channels = frame.layout.nb_channels
    if channels == 1:  # as OpusReceiveTrack decodes: the plane is the audio (maybe padded)
        return bytes(memoryview(frame.planes[0])[: 2 * frame.samples]), frame.sample_rate
    samples = np.frombuffer(
        memoryview(frame.planes[0]), dtype="<i2", count=frame.samples * channels
    )
    return samples[::channels].tobytes(), frame.sample_rate


_TIME_BASES = {rate: fractions.Fraction(1, rate) for rate in OPUS_RATES}


def _frame(pcm: bytes, rate: int, pts: int) -> AudioFrame:
    """A mono s16 frame of ``pcm`` at ``rate`` (one of :data:`OPUS_RATES`), ``pts`` in samples."""
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    frame.time_base = _TIME_BASES[rate]
    frame.pts = pts
    return frame


class OutgoingAudio(MediaStreamTrack):
    """The bot's audio track: 20 ms Opus packets (48 kHz mono) from a short queue.

    The output transport writes each chunk when it is due, so :meth:`recv` hands
    a packet over as soon as a frame is complete; when the bot is silent it sends
    silence on a 20 ms cadence. :meth:`clear` drops whatever is queued (an
    interruption), so nothing already queued reaches the peer afterwards.

    The track encodes Opus itself (mono, voice settings) and hands aiortc ready
    packets: that costs about a third of aiortc's own path, which encodes stereo
    at 96 kbps in a worker thread and measures each frame's level first.
    """

    kind = "audio"

    def __init__(
        self,
        *,
        max_queued_ms: float | None = 60.0,
        grace_ms: float = 10.0,
        bitrate: int = 32000,
        complexity: int = 5,
        application: str = "audio",
        paced: bool = False,
    ) -> None:
        """Create the track; ``grace_ms`` is how long a partial frame waits for the rest.

        ``paced`` makes the track keep time itself, one frame every 20 ms whatever is
        queued (a microphone playing a clip); ``max_queued_ms`` None queues without limit.
        """
        super().__init__()
        self._buffer = bytearray()
        self._ready = asyncio.Event()
        self._next_ns: int | None = None
        self._after_audio = False  # the last frame held written audio, not only silence
        self._pts = 0
        self._grace_ns = int(grace_ms * 1e6)
        self._paced = paced
        self._max_queued_ms = max_queued_ms
        self._bitrate = bitrate
        self._complexity = complexity
        self._application = application
        self.dropped_bytes = 0
        self.frames_sent = 0
        self.set_rate(WIRE_RATE)

    def set_rate(self, rate: int) -> None:
        """Take PCM at ``rate`` (one of :data:`OPUS_RATES`) from now on; drops what is queued."""
        if rate not in OPUS_RATES:
            raise ValueError(f"Opus encodes {OPUS_RATES} Hz, not {rate}: resample first")
        self.rate = rate
        self._frame_bytes = 2 * (rate // 50)
        cap = self._max_queued_ms
        limit = None if cap is None else int(cap * rate / 1000) * 2
        self._max_bytes = None if limit is None else max(self._frame_bytes, limit)
        self._buffer.clear()
        self._encoder = self._new_encoder(rate)
        self._silent_run = 0
        # A packet of settled silence, from an encoder that never heard anything else.
        quiet = self._new_encoder(rate)
        packets = [
            p for k in range(_SETTLED) for p in quiet.encode(_frame(bytes(rate // 25), rate, k))
        ]
        self._silence = bytes(packets[-1])

    def _new_encoder(self, rate: int) -> Any:
        encoder = CodecContext.create("libopus", "w")
        encoder.format = "s16"
        encoder.layout = "mono"
        encoder.sample_rate = rate
        encoder.bit_rate = self._bitrate
        encoder.time_base = fractions.Fraction(1, rate)
        encoder.options = {
            "application": self._application,
            "compression_level": str(self._complexity),
        }
        return encoder

    @property
    def queued_ms(self) -> float:
        """Audio waiting for the wire, in milliseconds."""
        return len(self._buffer) / 2 / self.rate * 1000

    def write(self, pcm: bytes) -> None:
        """Queue mono PCM16 at :attr:`rate`; past ``max_queued_ms`` the oldest is dropped."""
        self._buffer += pcm
        excess = 0 if self._max_bytes is None else len(self._buffer) - self._max_bytes
        if excess > 0:
            excess += excess % 2
            del self._buffer[:excess]
            self.dropped_bytes += excess
        if len(self._buffer) >= self._frame_bytes:
            self._ready.set()

    def clear(self) -> None:
        """Drop the queued audio."""
        self._buffer.clear()

    async def recv(self) -> Packet[Any]:
        """The next 20 ms packet: queued audio as soon as a frame is complete, else silence."""
        while True:
            pcm = await self._next_frame()
            pts, self._pts = self._pts, self._pts + WIRE_RATE // 50
            # Once the encoder has had silence long enough to forget what came before,
            # one packet of settled silence stands for any other: send it instead of
            # encoding (a bot is silent much of the time). Speech resumes from an
            # encoder state of silence, as the peer's decoder has.
            silent = pcm.count(0) == len(pcm)
            self._silent_run = self._silent_run + 1 if silent else 0
            if self._silent_run > _SETTLED:
                packets = [Packet(self._silence)]
            else:
                packets = self._encode(pcm, pts)
            for packet in packets:
                packet.pts = pts  # RTP time runs at 48 kHz whatever the input rate
                packet.time_base = _TIME_BASE
                self.frames_sent += 1
                return packet

    def _encode(self, pcm: bytes, pts: int) -> list[Packet[Any]]:
        frame = _frame(pcm, self.rate, pts * self.rate // WIRE_RATE)
        return list(self._encoder.encode(frame))

    async def _next_frame(self) -> bytes:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic_ns()
        if self._next_ns is None or now - self._next_ns > 5 * _FRAME_NS:
            self._next_ns = now
        if self._paced:
            if self._next_ns > now:
                await asyncio.sleep((self._next_ns - now) / 1e9)
            now = self._next_ns
        # A partial frame, or a pause in the middle of audio, waits ``grace_ms`` more
        # for the writer (which writes each chunk when it is due, a little late at times).
        waiting = self._buffer or self._after_audio
        deadline = self._next_ns + (self._grace_ns if waiting else 0)
        size = self._frame_bytes
        while len(self._buffer) < size and now < deadline:
            self._ready.clear()
            try:
                async with asyncio.timeout((deadline - now) / 1e9):
                    await self._ready.wait()
            except TimeoutError:
                break
            finally:
                now = time.monotonic_ns()
        if self.readyState != "live":
            raise MediaStreamError
        pcm = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._after_audio = bool(pcm)
        if len(pcm) < size:
            pcm += bytes(size - len(pcm))
        if self._after_audio:
            self._next_ns = max(now, self._next_ns) + _FRAME_NS
        else:
            # Silence keeps the 20 ms grid, however late each timer fires: the peer's
            # jitter buffer sees packets at the rate their timestamps advance.
            self._next_ns += _FRAME_NS
        return pcm

    def stop(self) -> None:
        """End the track; a waiting :meth:`recv` returns at once."""
        super().stop()
        self._ready.set()
