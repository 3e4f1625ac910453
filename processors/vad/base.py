"""Voice activity detection: the analyzer interface, its settings and the speech segmenter.

A :class:`VADAnalyzer` turns PCM16 mono audio of any chunk size into
:class:`VADWindow` results, one per native window of its model, each with a
speech confidence in ``[0, 1]`` and the window's level. A :class:`SpeechSegmenter`
turns those windows into speech starts and ends using :class:`VADParams`
(``start_ms`` of speech to start, ``stop_ms`` of silence to stop). Both are plain
synchronous objects: the turn processor drives them, and so do the measurements
in :mod:`benchmarks.vad.measure`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from framework.audio import StreamResampler

__all__ = [
    "SpeechEvent",
    "SpeechSegmenter",
    "VADAnalyzer",
    "VADParams",
    "VADWindow",
]

_FULL_SCALE = 32768.0


class VADParams(BaseModel):
    """Settings shared by every VAD backend, plus the backend-specific ones.

    The default ``stop_ms`` of 200 ms is set by the latency budget: the goal is
    voice-to-voice p50 <= 500 ms *including* the end-of-turn wait, and transcript,
    first LLM clause and first synthesised audio take about 200-250 ms after the
    decision on this CPU, which leaves about 250 ms for the wait itself (``stop_ms``
    plus up to one window plus the model's own tail). See docs/vad.md.
    """

    model_config = ConfigDict(extra="forbid")

    start_ms: float = Field(
        default=200.0,
        gt=0,
        le=5000,
        description="Milliseconds of continuous speech needed to declare that the user started.",
    )
    start_gap_ms: float = Field(
        default=100.0,
        ge=0,
        le=1000,
        description=(
            "Non-speech shorter than this inside a starting run does not restart it "
            "(stop closures and quiet spots inside words); only speech counts towards start_ms."
        ),
    )
    stop_ms: float = Field(
        default=200.0,
        gt=0,
        le=10000,
        description="Milliseconds of continuous silence needed to declare that the user stopped.",
    )
    pause_ms: float = Field(
        default=96.0,
        ge=0,
        le=10000,
        description=(
            "Milliseconds of silence after which a turn is tentatively over "
            "(UserPausedSpeakingFrame): the stages start answering while stop_ms runs out, "
            "and the reply plays once it does. 0 turns this speculation off. 96 ms (three "
            "Silero windows): shorter pauses fire between words and waste work."
        ),
    )
    threshold: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Speech confidence at or above which a window counts as speech.",
    )
    min_volume_dbfs: float = Field(
        default=-50.0,
        le=0.0,
        description="Windows quieter than this RMS level (dBFS) never count as speech.",
    )
    aggressiveness: int = Field(
        default=3,
        ge=0,
        le=3,
        description="webrtcvad only: 0 (least) to 3 (most) aggressive at filtering non-speech.",
    )
    webrtc_frame_ms: Literal[10, 20, 30] = Field(
        default=30, description="webrtcvad only: analysis window length in milliseconds."
    )


class VADWindow(NamedTuple):
    """One analysed window.

    ``start_s``/``end_s`` are offsets in the input stream (seconds since the
    analyzer's last reset, counted in input samples), ``confidence`` is the
    model's speech probability in ``[0, 1]`` and ``dbfs`` the window's RMS level.
    """

    start_s: float
    end_s: float
    confidence: float
    dbfs: float


class VADAnalyzer(ABC):
    """Base of the VAD backends: buffers input to the model's native window.

    Subclasses pick a native rate for an input rate (:meth:`_native_rate`), give
    their window length in native samples (:meth:`_window_samples`), and score one
    window (:meth:`_score`). Input at an unsupported rate is resampled with a
    :class:`~framework.audio.StreamResampler`. Models load lazily on first use,
    or on :meth:`load` (call it from a worker thread: it may take a while).
    """

    name: str = "vad"

    def __init__(self, sample_rate: int = 16000) -> None:
        """Create an analyzer for PCM16 mono input at ``sample_rate`` Hz."""
        self._sample_rate = 0
        self._native = 0
        self._window = 0
        self._resampler: StreamResampler | None = None
        self._buffer = bytearray()
        self._windows_done = 0
        self.set_sample_rate(sample_rate)

    # ----------------------------------------------------------------- API

    @property
    def sample_rate(self) -> int:
        """The rate of the audio given to :meth:`analyze`, in Hz."""
        return self._sample_rate

    @property
    def native_rate(self) -> int:
        """The rate the model runs at, in Hz."""
        return self._native

    @property
    def window_s(self) -> float:
        """The length of one analysis window in seconds."""
        return self._window / self._native

    def set_sample_rate(self, sample_rate: int) -> None:
        """Switch to input at ``sample_rate`` Hz; resets the stream."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
        native = self._native_rate(sample_rate)
        self._sample_rate = sample_rate
        self._native = native
        self._window = self._window_samples(native)
        self._resampler = None if native == sample_rate else StreamResampler(sample_rate, native)
        self.reset()

    def analyze(self, pcm: bytes) -> list[VADWindow]:
        """Feed PCM16 mono audio of any length; return the windows it completes."""
        if len(pcm) % 2:
            raise ValueError(f"pcm holds {len(pcm)} bytes: PCM16 needs an even number")
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        buffer = self._buffer
        buffer += pcm
        size = self._window * 2
        if len(buffer) < size:
            return []
        out: list[VADWindow] = []
        step = self._window / self._native
        whole = len(buffer) - len(buffer) % size
        samples = np.frombuffer(bytes(buffer[:whole]), dtype="<i2")
        del buffer[:whole]
        for offset in range(0, samples.size, self._window):
            window = samples[offset : offset + self._window]
            start = self._windows_done * step
            self._windows_done += 1
            out.append(VADWindow(start, start + step, self._score(window), _dbfs(window)))
        return out

    def reset(self) -> None:
        """Forget buffered audio and model state; window offsets restart at 0."""
        self._buffer.clear()
        self._windows_done = 0
        if self._resampler is not None:
            self._resampler.reset()
        self._reset_model()

    def load(self) -> None:
        """Load the model now instead of on first use. Blocking: run it in a thread."""
        return None

    def close(self) -> None:
        """Let go of the model (loaded again on next use); the pipeline calls it at the end."""
        return None

    # --------------------------------------------------------- for backends

    @abstractmethod
    def _native_rate(self, sample_rate: int) -> int:
        """The model rate to use for input at ``sample_rate``."""

    @abstractmethod
    def _window_samples(self, native_rate: int) -> int:
        """Samples in one analysis window at ``native_rate``."""

    @abstractmethod
    def _score(self, window: np.ndarray) -> float:
        """Speech confidence in ``[0, 1]`` of one window of int16 samples."""

    def _reset_model(self) -> None:
        """Clear the model's recurrent state, if it has one."""
        return None


def _dbfs(window: np.ndarray) -> float:
    mean_square = float(np.dot(window.astype(np.float64), window.astype(np.float64)))
    if mean_square == 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_square / window.size) - 20.0 * math.log10(_FULL_SCALE)


class SpeechEvent(NamedTuple):
    """A speech start or end found by :class:`SpeechSegmenter`.

    ``speech_s`` is the estimated true moment (start of the first speech window,
    or end of the last one); ``decided_s`` is the end of the window that settled
    it. Both are stream offsets in seconds.
    """

    kind: Literal["start", "pause", "resume", "stop"]
    speech_s: float
    decided_s: float


@dataclass(slots=True)
class _Run:
    active: bool = False
    start_s: float = 0.0
    speech_s: float = 0.0
    last_speech_end_s: float = 0.0
    silence_s: float = 0.0
    paused: bool = False


class SpeechSegmenter:
    """Turns analysed windows into speech starts and ends.

    A start needs ``start_ms`` of speech windows (a window is speech when its
    confidence reaches ``threshold`` and its level ``min_volume_dbfs``; once a run
    has begun, the level is not asked of the windows that go on with it, so a
    word's quiet tail counts: Piper's "Wait." is 192 ms above -50 dBFS and 256 ms
    of speech to the model) in a run whose non-speech stretches are each shorter
    than ``start_gap_ms``; the start
    is the first speech window of that run, or of an earlier run too short to start
    that ended less than ``stop_ms`` before it: "Wait," (under ``start_ms`` of
    speech), a breath, then the rest of the sentence is one turn from "Wait" on,
    as it would have been had the word been long enough. An end needs ``stop_ms`` of
    consecutive non-speech windows and is the end of the last speech window.
    Between the two, ``pause_ms`` of non-speech gives a tentative end (``pause``),
    and speech after it a ``resume``; a stop after a pause confirms it.
    """

    def __init__(self, params: VADParams | None = None) -> None:
        """Create a segmenter; it starts in silence."""
        self.params = params or VADParams()
        self._speaking = False
        self._run = _Run()
        self._lead: tuple[float, float] | None = None

    @property
    def speaking(self) -> bool:
        """True between a start and its end."""
        return self._speaking

    @property
    def speech_s(self) -> float:
        """Seconds of speech in the current run (the candidate start or the turn so far)."""
        return self._run.speech_s

    @property
    def silence_s(self) -> float:
        """Seconds of silence since the last speech window of the turn (0 outside a turn)."""
        return self._run.silence_s if self._speaking else 0.0

    def stop_now(self) -> SpeechEvent | None:
        """End the turn at once if it is in a silence; the stop it makes, else None.

        The turn processor calls it when the end-of-turn model's verdict arrives
        after enough silence, instead of waiting for the next window.
        """
        run = self._run
        if not self._speaking or run.silence_s <= 0.0:
            return None
        self._speaking = False
        self._run = _Run()
        return SpeechEvent("stop", run.last_speech_end_s, run.last_speech_end_s + run.silence_s)

    def is_speech(self, window: VADWindow) -> bool:
        """True when ``window`` counts as speech under the current params."""
        p = self.params
        return window.confidence >= p.threshold and window.dbfs >= p.min_volume_dbfs

    def update(
        self,
        window: VADWindow,
        *,
        min_start_ms: float = 0.0,
        stop_ms: float | None = None,
        start_ms: float | None = None,
    ) -> SpeechEvent | None:
        """Take the next window; return the start or end it completes, if any.

        ``min_start_ms`` raises the speech needed for a start above ``start_ms``
        (the turn processor uses it while the bot speaks); ``stop_ms`` and
        ``start_ms``, when given, replace ``params.stop_ms`` and ``params.start_ms``
        for this window (the turn processor sets the first from the end-of-turn
        model's verdict, the second while the bot speaks and a later stage
        decides barge-in).
        """
        run = self._run
        duration = window.end_s - window.start_s
        speech = self.is_speech(window)
        stop_s = (self.params.stop_ms if stop_ms is None else stop_ms) / 1000.0
        if not self._speaking:
            if not speech and run.active and window.confidence >= self.params.threshold:
                speech = True  # a started word's quiet tail: the level gate is for onsets
            if not speech:
                if run.active:
                    run.silence_s += duration
                    if run.silence_s + 1e-9 >= self.params.start_gap_ms / 1000.0:
                        self._lead = (run.start_s, run.last_speech_end_s)
                        self._run = _Run()
                return None
            if not run.active:
                run.active = True
                run.start_s = window.start_s
                lead = self._lead
                if lead is not None and 0.0 <= window.start_s - lead[1] < stop_s:
                    run.start_s = lead[0]  # a short word, a breath, then the rest
            run.silence_s = 0.0
            run.speech_s += duration
            run.last_speech_end_s = window.end_s
            start = self.params.start_ms if start_ms is None else start_ms
            needed = max(start, min_start_ms) / 1000.0
            if run.speech_s + 1e-9 >= needed:
                self._speaking = True
                self._lead = None
                return SpeechEvent("start", run.start_s, window.end_s)
            return None
        if speech:
            run.speech_s += duration
            run.last_speech_end_s = window.end_s
            run.silence_s = 0.0
            if run.paused:
                run.paused = False
                return SpeechEvent("resume", window.start_s, window.end_s)
            return None
        run.silence_s += duration
        if run.silence_s + 1e-9 >= stop_s:
            self._speaking = False
            self._run = _Run()
            return SpeechEvent("stop", run.last_speech_end_s, window.end_s)
        pause_s = self.params.pause_ms / 1000.0
        if pause_s > 0 and not run.paused and run.silence_s + 1e-9 >= pause_s:
            run.paused = True
            return SpeechEvent("pause", run.last_speech_end_s, window.end_s)
        return None

    def reset(self) -> None:
        """Back to silence, forgetting any run in progress."""
        self._speaking = False
        self._run = _Run()
        self._lead = None
