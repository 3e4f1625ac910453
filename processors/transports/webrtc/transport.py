"""The WebRTC transport: a browser's microphone in, the bot's voice out, events on a data channel.

One :class:`WebRTCTransport` serves one peer connection (one browser tab). Its
:meth:`~WebRTCTransport.input` hears the peer's audio track (Opus, decoded by
aiortc at 48 kHz) and pushes 20 ms chunks at the pipeline's input rate; its
:meth:`~WebRTCTransport.output` is a paced :class:`OutputTransport` whose chunks
go, resampled to 48 kHz, into a short queue that the outgoing track reads. The
base classes keep pacing, barge-in, bot-speaking frames and heard text; this
module only moves audio and events.

Events for the page (speaking, transcripts, bot words, each turn's latency) go
out as JSON messages on the data channel the page opens (label ``events``); see
``docs/webrtc.md``. The signalling server that creates these transports is
:mod:`processors.transports.webrtc.server`.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, CodecContext, Packet
from pydantic import Field

from framework import Direction, Frame, handles
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    StartFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.transports.base import InputTransport, OutputTransport, OutputTransportParams

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

    from framework.audio import StreamResampler
    from framework.frames import CancelFrame

__all__ = [
    "OPUS_RATES",
    "WIRE_RATE",
    "OutgoingAudio",
    "PeerLink",
    "WebRTCInputTransport",
    "WebRTCOutputTransport",
    "WebRTCTransport",
    "WebRTCTransportParams",
    "decoded_mono",
]

log = logging.getLogger("parley")

WIRE_RATE = 48000
"""Opus's clock rate: audio arrives decoded at 48 kHz, and RTP time counts at 48 kHz."""
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""Rates the Opus encoder takes as they are, without resampling."""
_FRAME_NS = 20_000_000
_SETTLED = 3  # silent frames after which the encoder's output for silence no longer changes
_TIME_BASE = fractions.Fraction(1, WIRE_RATE)
DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class WebRTCTransportParams(OutputTransportParams):
    """Settings of the ``[transport]`` table for ``backend = "webrtc"``."""

    media_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="End the session when no audio has arrived from the peer for this long "
        "(a browser sends audio continuously, silence included).",
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
    max_queued_ms: float = Field(
        default=140.0,
        ge=20,
        description="Audio the outgoing track may hold ahead of the wire; the output's "
        "pacing keeps it near one chunk (it catches up at most max_lag_ms after a stall), "
        "and older audio is dropped past this.",
    )


def decoded_mono(frame: object) -> tuple[bytes, int]:
    """Mono PCM16 and its rate from a frame aiortc decoded (packed s16, any channels).

    A browser's microphone travels as mono Opus, which aiortc decodes to two equal
    channels: the first one is the audio.
    """
    if not isinstance(frame, AudioFrame) or frame.format.name != "s16":
        raise TypeError(f"expected a packed s16 audio frame, got {frame!r}")
    channels = len(frame.layout.channels)
    samples = np.frombuffer(
        memoryview(frame.planes[0]), dtype="<i2", count=frame.samples * channels
    )
    return samples[::channels].tobytes(), frame.sample_rate


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
        self._pts = 0
        self._grace_ns = int(grace_ms * 1e6)
        self._paced = paced
        self._max_queued_ms = max_queued_ms
        self._bitrate = bitrate
        self._complexity = complexity
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
        encoder = CodecContext.create("libopus", "w")
        encoder.format = "s16"
        encoder.layout = "mono"
        encoder.sample_rate = rate
        encoder.bit_rate = self._bitrate
        encoder.time_base = fractions.Fraction(1, rate)
        encoder.options = {"application": "voip", "compression_level": str(self._complexity)}
        self._encoder = encoder
        self._silence: bytes | None = None
        self._silent_run = 0

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
            # Silence is the same packet every time once the encoder has settled on it:
            # send that again instead of encoding (a bot is silent much of the time).
            silent = pcm.count(0) == len(pcm)
            self._silent_run = self._silent_run + 1 if silent else 0
            if self._silent_run > _SETTLED and self._silence is not None:
                packets = [Packet(self._silence)]
            else:
                packets = self._encode(pcm, pts)
                if packets and self._silent_run == _SETTLED:
                    self._silence = bytes(packets[0])
            for packet in packets:
                packet.pts = pts  # RTP time runs at 48 kHz whatever the input rate
                packet.time_base = _TIME_BASE
                self.frames_sent += 1
                return packet

    def _encode(self, pcm: bytes, pts: int) -> list[Packet[Any]]:
        frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = self.rate
        frame.time_base = self._encoder.time_base
        frame.pts = pts * self.rate // WIRE_RATE
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
        deadline = self._next_ns + (self._grace_ns if self._buffer else 0)
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
        if len(pcm) < size:
            pcm += bytes(size - len(pcm))
        self._next_ns = max(now, self._next_ns) + _FRAME_NS
        return pcm

    def stop(self) -> None:
        """End the track; a waiting :meth:`recv` returns at once."""
        super().stop()
        self._ready.set()


class PeerLink:
    """What the two sides of one connection share: the peer connection, tracks and events.

    The signalling server creates it with the peer connection; the input side
    reads :meth:`remote_audio`, the output side writes :attr:`outgoing`, both
    send page events with :meth:`send_event`. :meth:`lose` reports that the peer
    has gone (the server ends the session).
    """

    def __init__(self, pc: RTCPeerConnection, params: WebRTCTransportParams) -> None:
        """Attach to ``pc``: its incoming audio track and its ``events`` data channel."""
        self.pc = pc
        self.params = params
        self.outgoing = OutgoingAudio(
            max_queued_ms=params.max_queued_ms,
            bitrate=params.opus_bitrate,
            complexity=params.opus_complexity,
        )
        self.lost_reason: str | None = None
        self.frames_received = 0
        """Audio frames decoded from the peer so far."""
        self._remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self._channel: RTCDataChannel | None = None
        self._backlog: deque[str] = deque(maxlen=200)
        self._on_lost: list[Callable[[str], None]] = []
        pc.on("track", self._track)
        pc.on("datachannel", self._datachannel)
        pc.on("connectionstatechange", self._state_changed)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._remote.done():
            self._remote.set_result(track)

    def _datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != "events":
            return
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def _flush(self) -> None:
        channel = self._channel
        while self._backlog and channel is not None and channel.readyState == "open":
            channel.send(self._backlog.popleft())

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self.lose(f"the peer connection is {state}")

    @property
    def has_audio(self) -> bool:
        """True once the peer's audio track has arrived."""
        return self._remote.done()

    async def remote_audio(self) -> MediaStreamTrack:
        """The peer's audio track (waits for it)."""
        return await self._remote

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` once when the peer is lost (at once if it already is)."""
        if self.lost_reason is not None:
            callback(self.lost_reason)
        else:
            self._on_lost.append(callback)

    def lose(self, reason: str) -> None:
        """Report that the peer has gone; the first reason wins."""
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        log.info("webrtc: %s", reason)
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback(reason)

    def send_event(self, event: str, **fields: Any) -> None:
        """Send ``{"type": event, "t_ms": ..., **fields}`` to the page (queued until it opens)."""
        message = json.dumps({"type": event, "t_ms": time.monotonic_ns() // 1_000_000, **fields})
        channel = self._channel
        if channel is not None and channel.readyState == "open" and not self._backlog:
            channel.send(message)
        elif self.lost_reason is None:
            self._backlog.append(message)

    async def close(self) -> None:
        """Stop the outgoing track and close the peer connection (sockets, threads, tasks)."""
        self.outgoing.stop()
        if not self._remote.done():
            self._remote.cancel()
        await self.pc.close()


class WebRTCTransport:
    """One browser connection as a transport: :meth:`input` and :meth:`output` processors.

    Created by the signalling server for each peer connection (see
    :func:`processors.transports.webrtc.server.mount`); a pipeline is built around
    it like around a :class:`~processors.transports.file.FileTransport`.
    """

    Params: ClassVar[type[WebRTCTransportParams]] = WebRTCTransportParams

    def __init__(
        self, params: WebRTCTransportParams, peer: PeerLink, *, name: str | None = None
    ) -> None:
        """Wrap ``peer``; ``params`` are the ``[transport]`` table's settings."""
        self.params = params
        self.peer = peer
        self.name = name or "webrtc"
        self._input: WebRTCInputTransport | None = None
        self._output: WebRTCOutputTransport | None = None

    @classmethod
    def mount(cls, app: Any, params: Any, run_session: Any) -> None:
        """Add the page and the SDP offer endpoint to the live server's aiohttp ``app``."""
        from processors.transports.webrtc.server import mount

        mount(app, cls.Params.model_validate(params, from_attributes=True), run_session)

    def input(self) -> WebRTCInputTransport:
        """The input processor (the same one on every call)."""
        if self._input is None:
            self._input = WebRTCInputTransport(self.params, self.peer, name=f"{self.name}.input")
        return self._input

    def output(self) -> WebRTCOutputTransport:
        """The output processor (the same one on every call)."""
        if self._output is None:
            self._output = WebRTCOutputTransport(self.params, self.peer, name=f"{self.name}.output")
        return self._output


class WebRTCInputTransport(InputTransport):
    """Hears the peer's audio track: decoded Opus, mixed to mono, resampled, in chunks.

    A chunk is stamped with the arrival time of its first sample. The end of the
    track, or no audio for ``media_timeout_s``, means the peer has gone.
    """

    Params: ClassVar[type[WebRTCTransportParams]] = WebRTCTransportParams

    def __init__(
        self, params: WebRTCTransportParams, peer: PeerLink, *, name: str | None = None
    ) -> None:
        """Create the input side; use :meth:`WebRTCTransport.input` rather than this."""
        super().__init__(params, name=name)
        self.webrtc_params = params
        self.peer = peer

    async def produce(self) -> None:
        """Push the peer's audio as it arrives until the track ends or goes quiet."""
        from framework.audio import StreamResampler

        track = await self.peer.remote_audio()
        self.peer.send_event("ready", input_rate=self.sample_rate)
        rate, timeout = self.sample_rate, self.webrtc_params.media_timeout_s
        quality = self.webrtc_params.resample_quality
        resampler: StreamResampler | None = None
        pending = bytearray()
        chunk_bytes = 2 * self.chunk_samples
        while True:
            try:
                with anyio.fail_after(timeout):
                    frame = await track.recv()
            except TimeoutError:
                self.peer.lose(f"no audio from the peer for {timeout:g} s")
                return
            except MediaStreamError:
                self.peer.lose("the peer's audio track ended")
                return
            arrived = time.monotonic_ns()
            self.peer.frames_received += 1
            pcm, frame_rate = decoded_mono(frame)
            if resampler is None or resampler.from_rate != frame_rate:
                resampler = StreamResampler(frame_rate, rate, 1, quality)
            pending += resampler.process(pcm)
            while len(pending) >= chunk_bytes:
                first_ns = arrived - (len(pending) // 2) * 1_000_000_000 // rate
                await self.push_audio(bytes(pending[:chunk_bytes]), first_ns)
                del pending[:chunk_bytes]

    @handles(ErrorFrame)
    async def _error(self, frame: ErrorFrame, direction: Direction) -> None:
        self.peer.send_event("error", message=frame.message, processor=frame.processor)
        await self.push(frame, direction)


class WebRTCOutputTransport(OutputTransport):
    """Plays the bot into the outgoing track and tells the page what happens.

    Each due chunk is queued on the track, which encodes it at the pipeline's
    output rate when Opus takes that rate (8, 12, 16, 24 or 48 kHz) and after
    resampling to 48 kHz otherwise; an interruption clears that queue at once.
    Everything this stage pushes on (speaking frames, transcripts, the words
    heard) is mirrored to the page, and each reply's first audio gives the
    turn's latency: from the end of the user's speech (as the server heard it)
    to the reply's first sample.
    """

    Params: ClassVar[type[WebRTCTransportParams]] = WebRTCTransportParams

    def __init__(
        self, params: WebRTCTransportParams, peer: PeerLink, *, name: str | None = None
    ) -> None:
        """Create the output side; use :meth:`WebRTCTransport.output` rather than this."""
        super().__init__(params, name=name)
        self.peer = peer
        self._to_wire: StreamResampler | None = None
        self._fresh = True  # the next chunk starts a stretch: align it to a whole frame
        self._replies = 0
        self._user_end_ns: int | None = None
        self.latencies_ms: list[float] = []
        self._mirror: dict[type[Frame], Callable[[Any], None]] = {
            UserStartedSpeakingFrame: self._user_started_event,
            UserStoppedSpeakingFrame: self._user_stopped_event,
            BotStartedSpeakingFrame: self._bot_started_event,
            BotStoppedSpeakingFrame: self._bot_stopped_event,
            InterimTranscriptionFrame: self._interim_event,
            TranscriptionFrame: self._final_event,
            TTSTextFrame: self._heard_event,
        }

    # ------------------------------------------------------------------ audio

    async def on_start(self, frame: StartFrame) -> None:
        """Set the outgoing track to the output rate, or to 48 kHz through a resampler."""
        await super().on_start(frame)
        rate = self.sample_rate
        if rate not in OPUS_RATES:
            from framework.audio import StreamResampler

            quality = self.params.resample_quality
            self._to_wire = StreamResampler(rate, WIRE_RATE, 1, quality)
            rate = WIRE_RATE
        self.peer.outgoing.set_rate(rate)

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Queue the chunk on the outgoing track; note a reply's latency."""
        if len(self.reply_first_audio_ns) != self._replies:
            self._replies = len(self.reply_first_audio_ns)
            self._reply_started(play_ns)
        if self._to_wire is not None:
            pcm = self._to_wire.process(pcm)
            if self._fresh:
                # The filter holds back a few samples at first: pad the front to a whole
                # frame so the first frame leaves now instead of one chunk later.
                self._fresh = False
                pcm = bytes(-len(pcm) % (WIRE_RATE // 25)) + pcm
        self.peer.outgoing.write(pcm)

    def _reply_started(self, play_ns: int) -> None:
        end_ns, self._user_end_ns = self._user_end_ns, None
        if end_ns is None:
            return
        latency_ms = round((play_ns - end_ns) / 1e6, 1)
        self.latencies_ms.append(latency_ms)
        self.peer.send_event("latency", ms=latency_ms, reply=self._replies)

    async def on_speaking_changed(self, speaking: bool, t_ns: int) -> None:
        """At the end of a stretch, send the resampler's tail and start afresh."""
        if not speaking and self._to_wire is not None:
            self.peer.outgoing.write(self._to_wire.flush())
            self._fresh = True

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Drop the audio queued for the wire at once, then stop as every output does."""
        self._clear_wire()
        await super().on_interruption(frame, dropped)

    async def on_cancel(self, frame: CancelFrame) -> None:
        """Nothing more goes out."""
        self._clear_wire()
        await super().on_cancel(frame)

    def _clear_wire(self) -> None:
        self.peer.outgoing.clear()
        if self._to_wire is not None:
            self._to_wire.reset()
        self._fresh = True

    # ----------------------------------------------------------------- events

    @handles(TTSTextFrame)
    async def _piece(self, frame: TTSTextFrame, direction: Direction) -> None:
        if direction is DOWN:
            self.peer.send_event("bot_text", text=frame.text)
        await self._text(frame, direction)

    async def push(self, frame: Frame, direction: Direction = DOWN) -> None:
        """Push on, and mirror what the page shows to the data channel."""
        if direction is DOWN:
            mirror = self._mirror.get(type(frame))
            if mirror is not None:
                mirror(frame)
        await super().push(frame, direction)

    def _user_started_event(self, frame: UserStartedSpeakingFrame) -> None:
        self.peer.send_event("user_started")

    def _user_stopped_event(self, frame: UserStoppedSpeakingFrame) -> None:
        self._user_end_ns = frame.speech_end_ns or frame.timestamp_ns
        self.peer.send_event("user_stopped")

    def _bot_started_event(self, frame: BotStartedSpeakingFrame) -> None:
        self.peer.send_event("bot_started")

    def _bot_stopped_event(self, frame: BotStoppedSpeakingFrame) -> None:
        self.peer.send_event(
            "bot_stopped", interrupted=frame.interrupted, played_s=round(frame.played_s, 3)
        )

    def _interim_event(self, frame: InterimTranscriptionFrame) -> None:
        self.peer.send_event("transcript", text=frame.text, final=False)

    def _final_event(self, frame: TranscriptionFrame) -> None:
        self.peer.send_event("transcript", text=frame.text, final=True)

    def _heard_event(self, frame: TTSTextFrame) -> None:
        self.peer.send_event("bot_heard", text=frame.text)
