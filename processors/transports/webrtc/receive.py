"""A peer's audio as it arrives: each Opus packet decoded in the event loop, no playout buffer.

aiortc's receiver holds incoming audio in a jitter buffer that releases a frame
only once four later packets have come (``JitterBuffer(capacity=16, prefetch=4)``),
then decodes it in a thread of its own: about 80 ms of delay on a link without
jitter, and one thread per connection. Over WebRTC every audio RTP packet is one
whole Opus frame, so nothing needs reassembling: :class:`OpusReceiveTrack` takes
the packets instead and hands each one over decoded (mono, 48 kHz PCM16) as soon
as it arrives in order.

A packet that arrives after a gap waits up to ``jitter_ms`` for the missing ones
(reordering); those still missing then are lost, and the track hands over
silence for their length, so the timeline keeps its length. A packet older than
one already handed over is dropped. With no gap, ``jitter_ms`` costs nothing.

The one point of contact with aiortc: its DTLS transport hands each RTP packet
of a receiver to that receiver's ``_handle_rtp_packet(packet, arrival_time_ms)``.
:meth:`OpusReceiveTrack.attach` points that method of one receiver (this
connection's audio receiver, nothing global) at the track. aiortc's receiver
still registers for the stream, answers RTCP and shuts down with the peer
connection; its decoding thread just never gets a packet (and so uses no CPU),
and its own track never gets a frame: the track that ends with the receiver
(see :meth:`OpusReceiveTrack.attach`). Its RTCP receiver reports carry no
statistics for this stream, as they describe packets it no longer sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame, CodecContext, Packet
from av.error import FFmpegError

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection, RTCRtpTransceiver
    from aiortc.rtp import RtpPacket

__all__ = ["OpusReceiveTrack", "opus_payload_types"]

log = logging.getLogger("parley")

_RATE = 48000  # Opus's RTP clock, and the rate libopus decodes at here
_TIME_BASE = fractions.Fraction(1, _RATE)
_FRAME = _RATE // 50
_MAX_GAP = 50  # packets: a longer jump is a new stream (or a restart), not a loss
_MAX_LOST_SAMPLES = _RATE // 5  # silence stands for at most 200 ms of a gap
_MAX_QUEUED = 250  # frames (5 s) kept for a reader that is not reading; older ones go


def _seq_diff(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in -32768..32767."""
    return (a - b + 0x8000) % 0x10000 - 0x8000


def opus_payload_types(pc: RTCPeerConnection, transceiver: RTCRtpTransceiver) -> frozenset[int]:
    """The RTP payload types that carry Opus on ``transceiver``, from the remote description."""
    description: Any = pc.remoteDescription  # None before one is set
    if description is None:
        return frozenset()
    parsed = SessionDescription.parse(description.sdp)
    return frozenset(
        codec.payloadType
        for media in parsed.media
        if media.kind == "audio" and (transceiver.mid is None or media.rtp.muxId == transceiver.mid)
        for codec in media.rtp.codecs
        if codec.mimeType.lower() == "audio/opus" and codec.payloadType is not None
    )


class OpusReceiveTrack(MediaStreamTrack):
    """Incoming Opus audio, each packet decoded and handed over as it arrives.

    Frames are mono s16 at 48 kHz; ``pts`` counts 48 kHz samples from the first
    packet's RTP timestamp (as aiortc's own track counts them). Counters:
    :attr:`packets` decoded, :attr:`lost` packets filled with silence,
    :attr:`late` packets dropped for arriving after their place was filled.
    """

    kind = "audio"

    def __init__(self, *, jitter_ms: float = 20.0) -> None:
        """Create the track; ``jitter_ms`` is how long a packet after a gap waits for it to fill."""
        if jitter_ms < 0:
            raise ValueError(f"jitter_ms must be 0 or more, got {jitter_ms}")
        super().__init__()
        self.jitter_s = jitter_ms / 1000
        self.packets = 0
        self.lost = 0
        self.late = 0
        self._queue: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self._decoder: Any = CodecContext.create("libopus", "r")
        self._decoder.format = "s16"
        self._decoder.layout = "mono"
        self._decoder.sample_rate = _RATE
        self._payload_types: Callable[[], frozenset[int]] = frozenset
        self._known_types: frozenset[int] | None = None
        self._next_seq: int | None = None
        self._origin: int | None = None  # RTP timestamp of the first packet
        self._next_ts = 0  # RTP timestamp (from the origin) where the next audio belongs
        self._held: dict[int, RtpPacket] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._follower: asyncio.Task[None] | None = None

    # --------------------------------------------------------------- wiring

    def attach(self, pc: RTCPeerConnection, transceiver: RTCRtpTransceiver) -> None:
        """Take ``transceiver``'s incoming RTP in place of aiortc's jitter buffer and decoder.

        The track ends when aiortc's own track for the receiver ends (the
        connection closed, or the peer said goodbye with RTCP BYE), or when
        :meth:`stop` is called.
        """
        receiver = transceiver.receiver
        self._payload_types = lambda: opus_payload_types(pc, transceiver)
        # The single hook (see the module docstring): this receiver's packets come here.
        receiver._handle_rtp_packet = self.handle_rtp_packet  # type: ignore[method-assign]
        if receiver.track is not None:
            self._follower = asyncio.get_running_loop().create_task(
                self._follow(receiver.track), name="webrtc-audio-follow"
            )

    async def _follow(self, original: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await original.recv()  # only returns when aiortc's receiver stops
        self.stop()

    # -------------------------------------------------------------- packets

    async def handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        """Take one RTP packet (aiortc's transport calls this for each one)."""
        self.feed(packet)

    def feed(self, packet: RtpPacket) -> None:
        """Release ``packet`` now if it is next in order; otherwise hold, fill or drop it."""
        if self.readyState != "live":
            return
        if self._known_types is None:
            types = self._payload_types()
            self._known_types = types or None
        if self._known_types is not None and packet.payload_type not in self._known_types:
            return  # not Opus (comfort noise, DTMF events)
        if self._next_seq is None:
            self._next_seq = packet.sequence_number
            self._origin = packet.timestamp
        ahead = _seq_diff(packet.sequence_number, self._next_seq)
        if ahead < 0 or packet.sequence_number in self._held:
            self.late += 1
            return
        if ahead > _MAX_GAP:
            self._release_held()
            self._next_seq = packet.sequence_number
            self._next_ts = self._stamp(packet)
            ahead = 0
        if ahead == 0:
            self._release(packet)
            self._release_consecutive()
            return
        self._held[packet.sequence_number] = packet
        if len(self._held) * _FRAME > self.jitter_s * _RATE:
            self._fill_gap()
        elif self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.jitter_s, self._fill_gap)

    def _stamp(self, packet: RtpPacket) -> int:
        assert self._origin is not None
        return (packet.timestamp - self._origin) % 0x1_0000_0000

    def _release(self, packet: RtpPacket) -> None:
        assert self._next_seq is not None
        self._next_seq = (packet.sequence_number + 1) % 0x10000
        pts = self._stamp(packet)
        try:
            frames = self._decoder.decode(Packet(packet.payload))
        except FFmpegError as exc:
            log.warning("webrtc: an Opus packet could not be decoded: %s", exc)
            self.lost += 1
            return
        self.packets += 1
        for frame in frames:
            frame.pts = pts
            frame.time_base = _TIME_BASE
            pts += frame.samples
            self._put(frame)
        self._next_ts = pts

    def _release_consecutive(self) -> None:
        while self._next_seq in self._held:
            self._release(self._held.pop(self._next_seq))
        if not self._held and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _fill_gap(self) -> None:
        """The wait is over: what is still missing before the first held packet is lost."""
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if not self._held or self._next_seq is None or self.readyState != "live":
            return
        first = min(self._held, key=lambda seq: _seq_diff(seq, self._next_seq or 0))
        self.lost += _seq_diff(first, self._next_seq)
        missing = min(max(0, self._stamp(self._held[first]) - self._next_ts), _MAX_LOST_SAMPLES)
        if missing:
            silence = AudioFrame(format="s16", layout="mono", samples=missing)
            silence.planes[0].update(bytes(2 * missing))
            silence.sample_rate = _RATE
            silence.pts = self._next_ts
            silence.time_base = _TIME_BASE
            self._put(silence)
        self._next_seq = first
        self._release_consecutive()
        if self._held:  # another gap further on: it waits as long in its turn
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.jitter_s, self._fill_gap)

    def _release_held(self) -> None:
        while self._held:
            self._fill_gap()

    def _put(self, frame: AudioFrame) -> None:
        if self._queue.qsize() >= _MAX_QUEUED:
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    # ---------------------------------------------------------------- track

    async def recv(self) -> AudioFrame:
        """The next decoded frame (waits for one); raises MediaStreamError once ended."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """End the track: a waiting :meth:`recv` raises, later packets are ignored."""
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        self._held.clear()
        follower, self._follower = self._follower, None
        if follower is not None and follower is not asyncio.current_task():
            follower.cancel()
