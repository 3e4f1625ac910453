"""Transport bases: hearing the user and playing the bot at real-time pace.

:class:`InputTransport` starts a producer when the Start frame has gone through
the pipeline and pushes :class:`~framework.frames.InputAudioFrame` chunks (mono,
at the task's input rate) that a subclass produces in :meth:`InputTransport.produce`.
:class:`LiveInputTransport` is one whose audio arrives from a peer: a receiving
loop hands it over with :meth:`LiveInputTransport.feed`.

The shared settings (:class:`InputTransportParams`, :class:`OutputTransportParams`)
and :func:`heard_text` are here too; the paced output is
:class:`~processors.transports.output.OutputTransport`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, ClassVar, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from framework import Direction, Processor, handles
from framework.frames import (
    EndFrame,
    InputAudioFrame,
    StartFrame,
)
from processors.transports.pacing import current_pacer

if TYPE_CHECKING:
    from framework.audio import StreamResampler
    from framework.frames import CancelFrame

__all__ = [
    "InputTransport",
    "InputTransportParams",
    "LiveInputTransport",
    "LiveInputTransportParams",
    "OutputTransportParams",
    "heard_text",
    "sleep_until_ns",
]

log = logging.getLogger("parley")
DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
ResampleQuality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
ListeningQuality = Literal["LD", "QQ", "LQ", "MQ", "HQ", "VHQ"]
"""``framework.audio.Quality``: "LD" is the low-delay filter of ``framework.audio.lowdelay``."""


async def sleep_until_ns(deadline_ns: int) -> None:
    """Sleep until the monotonic clock reads ``deadline_ns`` (at once if it has passed),
    on the event loop's shared pacer (at most one pacer tick late)."""
    await current_pacer().sleep_until(deadline_ns)


def heard_text(text: str, fraction: float) -> str:
    """The words of ``text`` heard when ``fraction`` of its audio played (floor by word count)."""
    words = text.split()
    # The epsilon keeps an exact boundary (3 s of 10 words, 0.6 s played) from
    # losing a word to floating-point error.
    count = int(len(words) * max(0.0, min(1.0, fraction)) + 1e-6)
    if count >= len(words):
        return text
    if count == 0:
        return ""
    lead = text[: len(text) - len(text.lstrip())]
    return lead + " ".join(words[:count])


class InputTransportParams(BaseModel):
    """Settings of an input transport."""

    model_config = ConfigDict(extra="forbid")

    chunk_ms: float = Field(
        default=20.0, gt=0, le=200, description="Duration of each pushed chunk."
    )
    resample_quality: ResampleQuality = Field(
        default="HQ",
        description="soxr quality for the bot's audio leaving at another rate: what people hear.",
    )
    listening_quality: ListeningQuality = Field(
        default="LD",
        description="Resampler for the user's audio arriving at another rate. Only the VAD "
        "and the transcriber hear it, so by default the low-delay 'LD' (~1 ms held back; "
        "soxr 'HQ' holds back ~21 ms on average, which every end of turn waits for).",
    )


class OutputTransportParams(InputTransportParams):
    """Settings of an output transport."""

    stop_delay_ms: float = Field(
        default=40.0,
        ge=0,
        le=5000,
        description="How long the audio queue must stay dry after the last sample has "
        "played before BotStoppedSpeakingFrame is pushed.",
    )
    max_lag_ms: float = Field(
        default=100.0,
        gt=0,
        description="When playback falls this far behind its schedule (a stalled event "
        "loop), the schedule is re-anchored to now instead of bursting to catch up.",
    )
    hold_while_user_speaks: bool = Field(
        default=True,
        description="A reply does not start playing while the user holds the floor "
        "(between user started and stopped speaking): replies prepared on a pause wait "
        "for the end of the turn.",
    )
    max_hold_s: float = Field(
        default=10.0, gt=0, description="Play anyway after holding a reply this long."
    )


class InputTransport(Processor):
    """Base of transports that hear the user; override :meth:`produce`.

    The producer runs in the task's task group once the Start frame has passed
    the whole pipeline, and stops on End, Cancel or cleanup.
    """

    Params: ClassVar[type[InputTransportParams]] = InputTransportParams

    def __init__(self, params: InputTransportParams | None = None, *, name: str | None = None):
        """Create the transport; ``params`` defaults to :attr:`Params` defaults."""
        super().__init__(name=name)
        self.params = params or self.Params()
        self._sample_rate = 0
        self._scope: anyio.CancelScope | None = None

    @property
    def sample_rate(self) -> int:
        """The task's input rate (0 before the Start frame)."""
        return self._sample_rate

    @property
    def chunk_samples(self) -> int:
        """Samples per pushed chunk at :attr:`sample_rate`."""
        return max(1, round(self._sample_rate * self.params.chunk_ms / 1000))

    async def on_start(self, frame: StartFrame) -> None:
        """Take the task's input rate."""
        self._sample_rate = frame.audio_in_sample_rate

    @handles(StartFrame)
    async def _start(self, frame: StartFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is DOWN and self._scope is None:
            self.context.task_group.start_soon(self._run_producer, name=f"{self.name}.producer")

    async def _run_producer(self) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                await self.produce()
            except Exception as exc:
                await self.push_error(
                    f"{self.name}: the input stopped: {type(exc).__name__}: {exc}", exception=exc
                )

    async def produce(self) -> None:
        """Produce the input: call :meth:`push_audio` per chunk, at the source's pace."""

    async def push_audio(self, pcm: bytes, timestamp_ns: int) -> None:
        """Push one chunk of mono PCM16 at :attr:`sample_rate` heard from ``timestamp_ns``."""
        await self.push(
            InputAudioFrame(
                audio=pcm, sample_rate=self._sample_rate, num_channels=1, timestamp_ns=timestamp_ns
            )
        )

    def stop_input(self) -> None:
        """Stop the producer (it is cancelled at its next checkpoint)."""
        if self._scope is not None:
            self._scope.cancel()

    async def on_end(self, frame: EndFrame) -> None:
        """An End frame from outside stops the input."""
        self.stop_input()

    async def on_cancel(self, frame: CancelFrame) -> None:
        """A Cancel frame stops the input."""
        self.stop_input()

    async def cleanup(self) -> None:
        """Stop the producer if it still runs."""
        self.stop_input()


class LiveInputTransportParams(InputTransportParams):
    """Settings of a :class:`LiveInputTransport`."""

    max_backlog_s: float = Field(
        default=2.0,
        gt=0,
        description="Audio received but not yet pushed (before the pipeline has started, "
        "say) is kept up to this long; older audio is dropped.",
    )


class LiveInputTransport(InputTransport):
    """An input transport fed by a receiving loop: call :meth:`feed` with what arrives.

    Audio may arrive at any rate and in pieces of any size: the producer resamples
    it to the task's input rate and pushes it in ``chunk_ms`` chunks as soon as it
    has them, stamped with when they were heard (the arrival of the piece's last
    sample, minus the audio after the chunk's start). The sender sets the pace.
    """

    Params: ClassVar[type[LiveInputTransportParams]] = LiveInputTransportParams

    def __init__(
        self, params: LiveInputTransportParams | None = None, *, name: str | None = None
    ) -> None:
        """Create the transport; ``params`` defaults to :attr:`Params` defaults."""
        params = params or self.Params()
        super().__init__(params, name=name)
        self.live_params: LiveInputTransportParams = params
        self._backlog: deque[tuple[bytes, int, int]] = deque()
        self._backlog_s = 0.0
        self._dropped_s = 0.0
        self._fed = anyio.Event()
        self._resamplers: dict[int, StreamResampler] = {}

    def feed(self, pcm: bytes, sample_rate: int) -> None:
        """Hand over received mono PCM16 at ``sample_rate``; never blocks."""
        if not pcm:
            return
        self._backlog.append((pcm, sample_rate, time.monotonic_ns()))
        self._backlog_s += len(pcm) / 2 / sample_rate
        while self._backlog_s > self.live_params.max_backlog_s and len(self._backlog) > 1:
            old, rate, _ = self._backlog.popleft()
            self._backlog_s -= len(old) / 2 / rate
            self._dropped_s += len(old) / 2 / rate
        self._fed.set()

    async def produce(self) -> None:
        """Push what :meth:`feed` hands over, in chunks at the task's input rate."""
        pending = bytearray()
        size = 2 * self.chunk_samples
        self.report_event("input_started", sample_rate=self.sample_rate)
        while True:
            if not self._backlog:
                self._fed = anyio.Event()
                await self._fed.wait()
                continue
            if self._dropped_s:
                log.warning("%s: dropped %.2f s of input audio", self.name, self._dropped_s)
                self._dropped_s = 0.0
            pcm, rate, arrived_ns = self._backlog.popleft()
            self._backlog_s -= len(pcm) / 2 / rate
            pending += self._resampled(pcm, rate)
            start_ns = arrived_ns - len(pending) // 2 * 1_000_000_000 // self.sample_rate
            while len(pending) >= size:
                chunk = bytes(pending[:size])
                del pending[:size]
                await self.push_audio(chunk, start_ns)
                start_ns += self.chunk_samples * 1_000_000_000 // self.sample_rate

    def _resampled(self, pcm: bytes, rate: int) -> bytes:
        if rate == self.sample_rate:
            return pcm
        resampler = self._resamplers.get(rate)
        if resampler is None:
            from framework.audio import StreamResampler

            quality = self.live_params.listening_quality
            resampler = StreamResampler(rate, self.sample_rate, 1, quality)
            self._resamplers[rate] = resampler
        return resampler.process(pcm)
