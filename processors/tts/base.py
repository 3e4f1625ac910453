"""The text-to-speech stage: streamed LLM text in, one audio piece per sentence or clause out.

:class:`TTSProcessor` holds everything the contract in docs/frame-flow.md asks of
a speech synthesiser; a backend only loads its voice and turns a piece of text
into PCM16 audio (:meth:`TTSProcessor.load`, :meth:`TTSProcessor.synthesize`,
both blocking and run in worker threads).

Per reply: ``LLMResponseStartFrame`` passes on; ``LLMTextFrame`` text goes
through a :class:`~processors.tts.text.SentenceSplitter`, and each complete piece
is synthesised at once, resampled to the task's output rate and pushed as a
``TTSTextFrame(text=piece)`` followed by the piece's ``OutputAudioFrame`` chunks.
``TTSStartedFrame`` comes before the first piece and ``TTSStoppedFrame`` after
the last, which the ``LLMResponseEndFrame`` flushes; then the end frame passes on.
The LLM text frames themselves are consumed.

An interruption drops the splitter's text; the piece being synthesised finishes
in its thread (a Piper call cannot be aborted; pieces are short) and its result
is discarded, so nothing of the interrupted reply is pushed afterwards.

A piece whose synthesis fails is skipped: an error frame naming the stage goes
upstream, neither its text nor any audio is pushed (so the conversation context
holds only what was spoken), and the reply goes on with its next piece. After
``max_failures_in_a_row`` failed pieces in a row the error is fatal (the task
ends).

Metrics per reply: ``ttfa``, seconds from the first text of the reply (its
frame's timestamp) to the push of the first audio, and ``cpu_s``, CPU seconds
spent synthesising.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import ClassVar, Generic, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from framework.foreground import FOREGROUND
from framework.frames.audio import OutputAudioFrame
from framework.frames.base import Direction, Frame
from framework.frames.control import TTSStartedFrame, TTSStoppedFrame
from framework.frames.lifecycle import (
    EndFrame,
    InterruptionFrame,
    MetricSample,
    MetricsFrame,
    StartFrame,
)
from framework.frames.llm import LLMResponseEndFrame, LLMResponseStartFrame
from framework.frames.text import LLMTextFrame, TTSTextFrame
from framework.processor import Processor, ProcessorContext, handles
from processors.faults import FailureCounter, max_failures_field
from processors.loading import ModelGate
from processors.tts.text import SentenceSplitter

__all__ = ["TTSParams", "TTSProcessor", "clean_for_speech"]

_UNSPOKEN = str.maketrans({c: " " for c in "*_#`~|<>"})


def _quote(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, shortened to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def clean_for_speech(text: str) -> str:
    """Remove markdown marks a model may write and a voice would read aloud."""
    return " ".join(text.translate(_UNSPOKEN).split())


class TTSParams(BaseModel):
    """Settings shared by every speech synthesiser."""

    model_config = ConfigDict(extra="forbid")

    chunk_ms: int = Field(
        default=20,
        ge=5,
        le=500,
        description="Duration of each OutputAudioFrame; an interruption cuts within one chunk.",
    )
    first_clause_min_words: int | None = Field(
        default=4,
        ge=1,
        description="Let the first piece of a reply end at a comma, semicolon or colon once it "
        "has this many words, so audio starts sooner; None splits at sentence ends only.",
    )
    first_piece_max_words: int | None = Field(
        default=4,
        ge=1,
        description="End the first piece of a reply after this many words when no "
        "punctuation came sooner, so synthesis starts early (None: never).",
    )
    max_failures_in_a_row: int = max_failures_field(3, "the piece is skipped, unspoken")


P = TypeVar("P", bound=TTSParams)


class TTSProcessor(Processor, Generic[P]):
    """Base of speech synthesisers; subclasses implement :meth:`load`,
    :attr:`voice_sample_rate` and :meth:`synthesize`. See the module docstring.
    """

    Params: ClassVar[type[TTSParams]] = TTSParams

    def __init__(self, params: P | None = None, *, name: str | None = None) -> None:
        """Create the stage; the voice loads when the pipeline starts."""
        super().__init__(name=name, queued=True)
        self.params: P = params if params is not None else cast(P, self.Params())
        self._splitter = SentenceSplitter(
            self.params.first_clause_min_words, self.params.first_piece_max_words
        )
        self._out_rate = StartFrame().audio_out_sample_rate
        self.model_gate = ModelGate(self, "voice")
        self._reported_load_error = False
        self.failures = FailureCounter(self, self.params.max_failures_in_a_row)
        """Synthesis failures in a row, and the error frames reporting them."""
        self._new_reply()

    # --------------------------------------------------------- backend API

    @property
    def voice_sample_rate(self) -> int:
        """Sample rate of the audio :meth:`synthesize` returns."""
        raise NotImplementedError

    def load(self) -> None:
        """Load the voice. Blocking: runs in a worker thread when the pipeline starts."""

    def synthesize(self, text: str) -> bytes:
        """Return mono PCM16 audio of ``text`` at :attr:`voice_sample_rate`.

        Blocking: runs in a worker thread, one call at a time.
        """
        raise NotImplementedError

    def cpu_time(self) -> float:
        """The CPU clock that measures synthesis; called in the synthesis thread.

        Thread time by default, right for a backend computing on the calling
        thread only; a backend with its own thread pool returns process time.
        """
        return time.thread_time()

    # ----------------------------------------------------------- lifecycle

    @property
    def output_sample_rate(self) -> int:
        """The rate of the pushed audio: the task's output rate once started."""
        return self._out_rate

    async def setup(self, context: ProcessorContext) -> None:
        """Attach to the task and prepare the readiness gate."""
        self.model_gate.arm()
        await super().setup(context)

    async def on_start(self, frame: StartFrame) -> None:
        """Take the output rate and load the voice in a worker thread."""
        self._out_rate = frame.audio_out_sample_rate
        await self.model_gate.load(self.load)
        self._reported_load_error = self.model_gate.error is not None

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Forget the interrupted reply's text; its in-flight piece is discarded."""
        self._splitter.reset()
        self._new_reply()

    def _new_reply(self) -> None:
        self._splitter.reset()
        self._started = False
        self._first_text_ns: int | None = None
        self._first_audio_sent = False
        self._cpu_s = 0.0

    # ------------------------------------------------------------- frames

    @handles(LLMResponseStartFrame)
    async def _response_start(self, frame: LLMResponseStartFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            await self._finish_reply()  # text left over from a reply that never ended
            self._new_reply()
        await self.push(frame, direction)

    @handles(LLMTextFrame)
    async def _llm_text(self, frame: LLMTextFrame, direction: Direction) -> None:
        if direction is not Direction.DOWNSTREAM:
            await self.push(frame, direction)
            return
        if self._first_text_ns is None:
            self._first_text_ns = frame.timestamp_ns
        for piece in self._splitter.feed(frame.text):
            await self._speak(piece)

    @handles(LLMResponseEndFrame)
    async def _response_end(self, frame: LLMResponseEndFrame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            await self._finish_reply()
            self._new_reply()
        await self.push(frame, direction)

    @handles(EndFrame)
    async def _end(self, frame: EndFrame, direction: Direction) -> None:
        await self._finish_reply()
        self._new_reply()
        await self.push(frame, direction)

    # ----------------------------------------------------------- synthesis

    async def _finish_reply(self) -> None:
        for piece in self._splitter.flush():
            await self._speak(piece)
        if self._started:
            await self.push(TTSStoppedFrame())
            await self._metrics(("cpu_s", self._cpu_s, "s"))

    async def _speak(self, piece: str) -> None:
        load_error = await self.model_gate.wait()
        if load_error is not None:
            if not self._reported_load_error:
                self._reported_load_error = True
                await self.push_error(f"{self.name}: the voice is not loaded: {load_error}")
            return
        if self.failures.exhausted:
            return
        try:
            first = not self._started  # the reply's first audio: someone is waiting for it
            chunks, cpu_s = await anyio.to_thread.run_sync(self._render, piece, first)
        except Exception as exc:
            # The interruption check below comes first: a piece nobody will hear
            # is not worth an error.
            await anyio.lowlevel.checkpoint_if_cancelled()
            await self.failures.failed(f"failed to synthesise {_quote(piece)}", exc)
            return
        # The thread cannot be abandoned, so an interruption that came meanwhile is
        # only seen here: stop before touching the state of the reply.
        await anyio.lowlevel.checkpoint_if_cancelled()
        self.failures.succeeded()
        self._cpu_s += cpu_s
        if not chunks:
            return
        if not self._started:
            self._started = True
            await self.push(TTSStartedFrame())
        await self.push(TTSTextFrame(text=piece))
        rate = self._out_rate
        for chunk in chunks:
            await self.push(OutputAudioFrame(audio=chunk, sample_rate=rate))
            if not self._first_audio_sent:
                self._first_audio_sent = True
                if self._first_text_ns is not None:
                    ttfa = (time.monotonic_ns() - self._first_text_ns) / 1e9
                    await self._metrics(("ttfa", ttfa, "s"))

    def _render(self, piece: str, first: bool = False) -> tuple[list[bytes], float]:
        """Worker thread: synthesise, resample to the output rate, cut into chunks.

        A reply's ``first`` audio is synthesised as foreground work
        (:mod:`framework.foreground`): the language model pauses meanwhile.
        """
        from framework.audio import chunk_pcm, resample

        text = clean_for_speech(piece)
        if not text:
            return [], 0.0
        cpu_start = self.cpu_time()
        with FOREGROUND.running() if first else nullcontext():
            pcm = self.synthesize(text)
        if pcm:
            pcm = resample(pcm, self.voice_sample_rate, self._out_rate)
        chunks = list(chunk_pcm(pcm, self._out_rate, 1, self.params.chunk_ms)) if pcm else []
        return chunks, self.cpu_time() - cpu_start

    async def _metrics(self, *samples: tuple[str, float, str]) -> None:
        await self.push(
            MetricsFrame(
                samples=[
                    MetricSample(processor=self.name, name=n, value=v, unit=u)
                    for n, v, u in samples
                ]
            )
        )
