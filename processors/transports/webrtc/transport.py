"""The WebRTC transport: a browser's microphone in, the bot's voice out, events on a data channel.

One :class:`WebRTCTransport` serves one peer connection (one browser tab). Its
:meth:`~WebRTCTransport.input` hears the peer's audio track (Opus, decoded by
aiortc at 48 kHz) and pushes 20 ms chunks at the pipeline's input rate; its
:meth:`~WebRTCTransport.output` is a paced :class:`OutputTransport` whose chunks
go into a short queue that the outgoing track (:mod:`.audio`) encodes and sends. The
base classes keep pacing, barge-in, bot-speaking frames and heard text; this
module only moves audio and events.

Events for the page (speaking, transcripts, bot words, each turn's latency) go
out as JSON messages on the data channel the page opens (label ``events``); see
``docs/webrtc.md``. The signalling server that creates these transports is
:mod:`processors.transports.webrtc.server`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from aiortc.mediastreams import MediaStreamError

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
from processors.transports.base import InputTransport
from processors.transports.output import OutputTransport
from processors.transports.webrtc.audio import OPUS_RATES, WIRE_RATE, decoded_mono
from processors.transports.webrtc.params import WebRTCTransportParams
from processors.transports.webrtc.peer import PeerLink

if TYPE_CHECKING:
    from framework.audio import StreamResampler
    from framework.frames import CancelFrame

__all__ = [
    "WebRTCInputTransport",
    "WebRTCOutputTransport",
    "WebRTCTransport",
    "WebRTCTransportParams",
]

DOWN = Direction.DOWNSTREAM


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

        mount(app, cls.Params.model_validate(params, from_attributes=True), run_session, cls)

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
    """Hears the peer's audio track: decoded Opus, as mono, resampled, in chunks.

    A chunk is stamped with the arrival time of its first sample. Audio that
    arrived before the pipeline started (while models load) is dropped: the
    page tells the user to speak once the ``ready`` event comes. The end of the
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
        track = await self.peer.remote_audio()
        try:
            await _drop_queued(track)
        except MediaStreamError:
            self.peer.lose("the peer's audio track ended")
            return
        self.peer.send_event("ready", input_rate=self.sample_rate)
        timeout = self.webrtc_params.media_timeout_s
        with anyio.CancelScope() as scope:
            watchdog = Watchdog(timeout, scope.cancel)
            try:
                await self._hear(track, watchdog)
            finally:
                watchdog.stop()
        if scope.cancelled_caught:
            self.peer.lose(f"no audio from the peer for {timeout:g} s")

    async def _hear(self, track: Any, watchdog: Watchdog) -> None:
        """Resample the track's frames and push them in chunks, until it ends."""
        from framework.audio import StreamResampler

        rate, quality = self.sample_rate, self.webrtc_params.listening_quality
        resampler: StreamResampler | None = None
        pending = bytearray()
        chunk_bytes = 2 * self.chunk_samples
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.peer.lose("the peer's audio track ended")
                return
            arrived = watchdog.last_ns = time.monotonic_ns()
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


class Watchdog:
    """Calls ``expire`` once :attr:`last_ns` is ``timeout_s`` old: one timer, not one per frame.

    The reader sets :attr:`last_ns` (``time.monotonic_ns()``) at each arrival, which
    costs an attribute write; the timer, when it fires early, re-arms itself for
    the new deadline. :meth:`stop` disarms it.
    """

    def __init__(self, timeout_s: float, expire: Callable[[], object]) -> None:
        """Start watching now, on the running event loop."""
        self.last_ns = time.monotonic_ns()
        self._timeout_ns = int(timeout_s * 1e9)
        self._expire = expire
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(timeout_s, self._check)

    def _check(self) -> None:
        quiet_ns = time.monotonic_ns() - self.last_ns
        if quiet_ns >= self._timeout_ns:
            self._timer = None
            self._expire()
        else:
            delay = (self._timeout_ns - quiet_ns) / 1e9
            self._timer = self._loop.call_later(delay, self._check)

    def stop(self) -> None:
        """Disarm the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _drop_queued(track: Any) -> None:
    """Take and drop the frames ``track`` already holds (each comes back at once)."""
    stale = True
    while stale:
        stale = False
        with anyio.move_on_after(0.002):
            await track.recv()
            stale = True


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
        self._unannounced: str | None = None  # a piece whose audio has not started
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
        if self._unannounced is not None:
            self.peer.send_event("bot_text", text=self._unannounced)
            self._unannounced = None
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
        self._unannounced = None
        self.peer.outgoing.clear()
        if self._to_wire is not None:
            self._to_wire.reset()
        self._fresh = True

    # ----------------------------------------------------------------- events

    @handles(TTSTextFrame)
    async def _piece(self, frame: TTSTextFrame, direction: Direction) -> None:
        await self._text(frame, direction)  # plays what is left of the previous piece
        if direction is DOWN:
            self._unannounced = frame.text  # told to the page when its audio starts

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
