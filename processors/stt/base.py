"""The speech-to-text stage: user turns of audio in, interim and final transcripts out.

:class:`STTProcessor` keeps the contract of docs/frame-flow.md for every
backend. ``InputAudioFrame``, ``UserStartedSpeakingFrame`` and
``UserStoppedSpeakingFrame`` (system frames) pass on at once; handling them only
copies audio into buffers, so the input path never waits for a model.

* Between turns the stage keeps a short history of audio. When the VAD reports
  the start of a turn (which it decides some time after the speech began), the
  turn's audio begins ``pre_roll_ms`` before ``speech_start_ns``, so the first
  word is not cut.
* Each turn is a :class:`TurnAudio`, handed to a decoder task that runs for the
  life of the pipeline and calls the backend's :meth:`STTProcessor.decode_turn`
  on one turn after another. Backends do their blocking work through
  :meth:`STTProcessor.run_decoder`, which runs it in a worker thread and counts
  its CPU time. They may push interim transcripts while the user speaks.
* After ``UserStoppedSpeakingFrame`` the stage pushes exactly one
  ``TranscriptionFrame`` for the turn (empty text if nothing was recognised or
  decoding failed, in which case an error frame goes upstream too), with
  ``start_ns``/``end_ns`` of the audio it covers, then a ``MetricsFrame`` with
  ``stt_final_s`` (seconds from the arrival of the stop frame to the push of the
  final transcript) and ``cpu_s`` (CPU seconds spent decoding the turn).
* A turn whose decoding fails is reported upstream (a non-fatal error frame
  naming the stage); the backend is restarted (:meth:`STTProcessor.restart`) and
  the turn decoded again from its first sample, so the user's words are not
  lost. After ``max_failures_in_a_row`` failures in a row, or when a restart
  fails, the error is fatal (the task ends) and the turn's final is empty.

An interruption does not touch transcription: the user's words still count.
An ``EndFrame`` closes an open turn and waits for the pending final transcripts
before it passes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from framework.frames.audio import InputAudioFrame
from framework.frames.base import Direction
from framework.frames.lifecycle import EndFrame, MetricSample, MetricsFrame, StartFrame
from framework.frames.speech import (
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from framework.frames.text import InterimTranscriptionFrame, TranscriptionFrame
from framework.processor import Processor, ProcessorContext, handles
from processors.faults import FailureCounter, max_failures_field
from processors.loading import ModelGate

if TYPE_CHECKING:
    from framework.audio import StreamResampler

__all__ = ["SAMPLE_RATE", "STTParams", "STTProcessor", "TurnAudio"]

T = TypeVar("T")

SAMPLE_RATE = 16000
"""The rate of the audio backends receive: mono PCM16 at 16 kHz."""
_BYTES_PER_S = 2 * SAMPLE_RATE
_NS = 1_000_000_000
_START_DELAY_MAX_MS = 1000  # history kept beyond pre-roll: covers the VAD's start decision


class STTParams(BaseModel):
    """Settings shared by every transcriber."""

    model_config = ConfigDict(extra="forbid")

    pre_roll_ms: int = Field(
        default=300,
        ge=0,
        le=2000,
        description="Audio included before the start of speech reported by the VAD "
        "(UserStartedSpeakingFrame.speech_start_ns), so the first word is not cut. "
        "When the VAD gives no start time, up to pre_roll_ms + 1 s of history is used.",
    )
    user_id: str = Field(default="user", description="user_id of the transcription frames.")
    max_failures_in_a_row: int = max_failures_field(
        2, "the backend is restarted and the turn transcribed again"
    )


class TurnAudio:
    """The audio of one user turn: filled as frames arrive, read by the decoder meanwhile.

    Audio is mono PCM16 at :data:`SAMPLE_RATE`. ``start_ns``/``end_ns`` bound it on
    the task clock; ``speech_end_ns`` is the VAD's estimate of the end of speech,
    known once the turn has :attr:`ended`. A backend reads either everything so
    far (:meth:`audio`) or only what it has not read yet (:meth:`take`), and may
    wait for more (:meth:`wait_until`, several waiters at once are fine).
    :attr:`loud_end` tells where the loud part of the audio ends so far.
    """

    def __init__(self, index: int, start_ns: int) -> None:
        from processors.stt._levels import LoudnessTracker

        self.index = index
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.speech_end_ns: int | None = None
        self.ended = False
        self.stopped_at_ns: int | None = None
        self.superseded = False  # resumed after a pause: a later turn covers this audio
        self.cpu_s = 0.0
        self.last_interim = ""
        self._buf = bytearray()
        self._read = 0
        self._levels = LoudnessTracker()
        self._changed: anyio.Event | None = None

    @property
    def num_samples(self) -> int:
        """Samples received so far."""
        return len(self._buf) // 2

    @property
    def duration_s(self) -> float:
        """Seconds of audio received so far."""
        return len(self._buf) / _BYTES_PER_S

    @property
    def loud_end(self) -> int:
        """Sample index just past the last loud 20 ms frame (see :mod:`processors.stt._levels`)."""
        return self._levels.loud_end

    @property
    def unread(self) -> int:
        """Bytes received but not yet returned by :meth:`take`."""
        return len(self._buf) - self._read

    def audio(self) -> bytes:
        """A copy of all the turn's audio so far (safe to hand to a thread)."""
        return bytes(self._buf)

    def take(self, max_bytes: int | None = None) -> bytes:
        """The audio received since the previous call (empty if none), at most ``max_bytes``."""
        end = len(self._buf) if max_bytes is None else min(len(self._buf), self._read + max_bytes)
        data = bytes(self._buf[self._read : end])
        self._read = end
        return data

    def rewind(self) -> None:
        """Read from the first sample again (a failed turn is decoded anew)."""
        self._read = 0
        self.last_interim = ""

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds or the turn has ended; checked on each new chunk."""
        while not (self.ended or predicate()):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def _append(self, pcm: bytes, end_ns: int) -> None:
        if not self._buf:  # the turn's audio starts with its first chunk
            self.start_ns = end_ns - len(pcm) * _NS // _BYTES_PER_S
        self._buf += pcm
        self.end_ns = end_ns
        self._levels.update(pcm)
        self._wake()

    def _end(self, speech_end_ns: int | None) -> None:
        self.ended = True
        self.speech_end_ns = speech_end_ns
        self.stopped_at_ns = time.monotonic_ns()
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


P = TypeVar("P", bound=STTParams)


class STTProcessor(Processor, Generic[P]):
    """Base of transcribers; subclasses implement :meth:`load` and :meth:`decode_turn`.

    See the module docstring for the turn logic. The stage runs inline: every
    frame it consumes is a system frame, and all decoding happens in its decoder
    task and worker threads.
    """

    Params: ClassVar[type[STTParams]] = STTParams

    def __init__(self, params: P | None = None, *, name: str | None = None) -> None:
        """Create the stage; the model loads when the pipeline starts."""
        super().__init__(name=name)
        self.params: P = params if params is not None else cast(P, self.Params())
        self._history: deque[tuple[int, bytes]] = deque()  # (start_ns, pcm) between turns
        self._history_bytes = 0
        self._history_cap = (self.params.pre_roll_ms + _START_DELAY_MAX_MS) * _BYTES_PER_S // 1000
        self._resampler: StreamResampler | None = None
        self._open: TurnAudio | None = None
        self._last_closed: TurnAudio | None = None  # a resume continues it
        self._turns: deque[TurnAudio] = deque()
        self._turn_count = 0
        self._decoder_wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self.model_gate = ModelGate(self, "model", fatal=True)
        self.failures = FailureCounter(self, self.params.max_failures_in_a_row)
        """Decoding failures in a row, and the error frames reporting them."""
        self.restarts = 0
        """Times the backend was restarted after a failure."""

    # --------------------------------------------------------- backend API

    def load(self) -> None:
        """Load the model. Blocking: runs in a worker thread when the pipeline starts."""

    def release(self) -> None:
        """Drop the model when the task ends (blocking is fine: runs in a worker thread)."""

    async def restart(self) -> None:
        """Bring the backend back after a failed turn: :meth:`release`, then :meth:`load`.

        Both run in a worker thread. A backend whose failures leave nothing to
        replace (a client of a remote service) may override this.
        """

        def reload() -> None:
            self.release()
            self.load()

        await anyio.to_thread.run_sync(reload)

    async def decode_turn(self, turn: TurnAudio) -> str:
        """Transcribe ``turn`` and return the final text once :attr:`TurnAudio.ended`.

        Called on the decoder task as soon as the turn starts, so a streaming
        backend reads audio while the user speaks (:meth:`TurnAudio.take`,
        :meth:`TurnAudio.wait_until`). Blocking work goes through
        :meth:`run_decoder`; interim text through :meth:`push_interim`.
        """
        raise NotImplementedError

    def cpu_time(self) -> float:
        """The CPU clock that measures decoding, read in the worker thread.

        Thread time by default, right for a backend that computes on the calling
        thread; a backend with its own threads overrides it.
        """
        return time.thread_time()

    async def run_decoder(self, turn: TurnAudio, fn: Callable[..., T], *args: object) -> T:
        """Run blocking ``fn(*args)`` in a worker thread; add its CPU time to the turn."""

        def call() -> T:
            start = self.cpu_time()
            try:
                return fn(*args)
            finally:
                turn.cpu_s += self.cpu_time() - start

        return await anyio.to_thread.run_sync(call)

    async def push_interim(self, turn: TurnAudio, text: str) -> None:
        """Push an interim transcript of ``turn`` if it is new and the turn still runs."""
        text = text.strip()
        if text and text != turn.last_interim and not turn.ended:
            turn.last_interim = text
            await self.push(InterimTranscriptionFrame(text=text, user_id=self.params.user_id))

    # ----------------------------------------------------------- lifecycle

    async def setup(self, context: ProcessorContext) -> None:
        """Attach to the task and start the decoder task (which waits for the model)."""
        self.model_gate.arm()
        await super().setup(context)
        context.task_group.start_soon(self._decoder_loop, name=f"{self.name}.decoder")

    async def on_start(self, frame: StartFrame) -> None:
        """Load the model in a worker thread; a failure is reported as a fatal error."""
        await self.model_gate.load(self.load)

    async def on_end(self, frame: EndFrame) -> None:
        """Close an open turn and wait until every final transcript has been pushed."""
        if self._open is not None:
            self._close_turn(None)
        while self._turns:
            idle = self._idle = anyio.Event()
            await idle.wait()

    async def cleanup(self) -> None:
        """Release the model in a worker thread."""
        await anyio.to_thread.run_sync(self.release)

    # ------------------------------------------------------------- frames

    @handles(InputAudioFrame)
    async def _audio(self, frame: InputAudioFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self._keep_audio(frame)
        await self.push(frame, direction)

    @handles(UserStartedSpeakingFrame)
    async def _started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM and self._open is None:
            self._open_turn(frame)
        await self.push(frame, direction)

    @handles(UserStoppedSpeakingFrame, UserPausedSpeakingFrame)
    async def _stopped(
        self, frame: UserStoppedSpeakingFrame | UserPausedSpeakingFrame, direction: Direction
    ) -> None:
        # A pause is a tentative end: transcribe now, so the answer can be prepared
        # while the VAD waits to confirm. The stop that confirms it finds the turn closed.
        if direction is Direction.DOWNSTREAM and self._open is not None:
            self._close_turn(frame.speech_end_ns)
        await self.push(frame, direction)

    @handles(UserResumedSpeakingFrame)
    async def _resumed(self, frame: UserResumedSpeakingFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM and self._open is None and self._last_closed:
            self._continue_turn(self._last_closed)
        await self.push(frame, direction)

    # ------------------------------------------------------------- turns

    def _keep_audio(self, frame: InputAudioFrame) -> None:
        pcm = frame.audio
        if frame.num_channels != 1:
            from framework.audio import to_mono

            pcm = to_mono(pcm, frame.num_channels)
        if frame.sample_rate != SAMPLE_RATE:
            pcm = self._resample(pcm, frame.sample_rate)
        if not pcm:
            return
        end_ns = frame.timestamp_ns + round(frame.duration_s * _NS)
        turn = self._open
        if turn is not None:
            turn._append(pcm, end_ns)
            return
        start_ns = end_ns - len(pcm) * _NS // _BYTES_PER_S
        self._history.append((start_ns, pcm))
        self._history_bytes += len(pcm)
        while self._history_bytes - len(self._history[0][1]) >= self._history_cap:
            self._history_bytes -= len(self._history.popleft()[1])

    def _resample(self, pcm: bytes, rate: int) -> bytes:
        from framework.audio import StreamResampler

        if self._resampler is None or self._resampler.from_rate != rate:
            self._resampler = StreamResampler(rate, SAMPLE_RATE)
        return self._resampler.process(pcm)

    def _open_turn(self, frame: UserStartedSpeakingFrame) -> None:
        turn, history = self._new_turn(frame.speech_start_ns or frame.timestamp_ns)
        cut_ns = None
        if frame.speech_start_ns is not None:
            cut_ns = frame.speech_start_ns - self.params.pre_roll_ms * 1_000_000
        for chunk_start, pcm in history:
            chunk_end = chunk_start + len(pcm) * _NS // _BYTES_PER_S
            if cut_ns is not None and chunk_end <= cut_ns:
                continue
            if cut_ns is not None and chunk_start < cut_ns:
                pcm = pcm[(cut_ns - chunk_start) * _BYTES_PER_S // _NS // 2 * 2 :]
            turn._append(pcm, chunk_end)
        self._begin(turn)

    def _continue_turn(self, paused: TurnAudio) -> None:
        """The user spoke again after a pause: a new turn holds the whole turn's audio.

        Its final transcript covers everything since the start of the turn, and the
        paused turn's final is not pushed if it has not been already.
        """
        paused.superseded = True
        turn, history = self._new_turn(paused.start_ns)
        turn._append(paused.audio(), paused.end_ns)
        for chunk_start, pcm in history:
            turn._append(pcm, chunk_start + len(pcm) * _NS // _BYTES_PER_S)
        self._begin(turn)

    def _new_turn(self, start_ns: int) -> tuple[TurnAudio, deque[tuple[int, bytes]]]:
        """A new numbered turn, and the history kept since the last one (now emptied)."""
        history, self._history = self._history, deque()
        self._history_bytes = 0
        self._turn_count += 1
        return TurnAudio(self._turn_count, start_ns), history

    def _begin(self, turn: TurnAudio) -> None:
        self._open = turn
        self._last_closed = None
        self._turns.append(turn)
        self._wake_decoder()

    def _close_turn(self, speech_end_ns: int | None) -> None:
        turn, self._open = self._open, None
        if turn is not None:
            turn._end(speech_end_ns)
            self._last_closed = turn

    # ------------------------------------------------------------- decoder

    def _wake_decoder(self) -> None:
        wakeup = self._decoder_wakeup
        if wakeup is not None:
            self._decoder_wakeup = None
            wakeup.set()

    async def _decoder_loop(self) -> None:
        while True:
            while not self._turns:
                wakeup = self._decoder_wakeup = anyio.Event()
                await wakeup.wait()
            turn = self._turns[0]
            text = await self._decode_safely(turn)
            if not turn.superseded:
                await self._push_final(turn, text)
            self._turns.popleft()
            if not self._turns and self._idle is not None:
                self._idle.set()

    async def _decode_safely(self, turn: TurnAudio) -> str:
        text = ""
        load_error = await self.model_gate.wait()  # turns can start before the model has loaded
        while load_error is None and not self.failures.exhausted:
            try:
                text = await self.decode_turn(turn)
            except Exception as exc:
                what = f"failed to transcribe turn {turn.index}"
                if await self.failures.failed(what, exc) and await self._restart():
                    turn.rewind()
                    continue
                text = ""
            else:
                self.failures.succeeded()
            break
        await turn.wait_until(lambda: False)  # the final follows the end of the turn
        return text.strip()

    async def _restart(self) -> bool:
        """Restart the backend after a failure; a restart that fails is fatal."""
        try:
            await self.restart()
        except Exception as exc:
            await self.failures.give_up("could not restart its backend", exc)
            return False
        self.restarts += 1
        return True

    async def _push_final(self, turn: TurnAudio, text: str) -> None:
        now = time.monotonic_ns()
        stopped = turn.stopped_at_ns if turn.stopped_at_ns is not None else now
        latency_s = (now - stopped) / _NS
        await self.push(
            TranscriptionFrame(
                text=text,
                user_id=self.params.user_id,
                language="en",
                start_ns=turn.start_ns,
                end_ns=turn.end_ns,
            )
        )
        extra = {"turn": turn.index, "audio_s": round(turn.duration_s, 3)}
        await self.push(
            MetricsFrame(
                samples=[
                    MetricSample(self.name, "stt_final_s", latency_s, extra=extra),
                    MetricSample(self.name, "cpu_s", turn.cpu_s, extra=extra),
                ]
            )
        )
