"""Whisper's encoder window: pass time, retries and transcripts, on the corpus and the short clips.

A pass encodes ``max(window_s, audio + 1 s)`` of features (docs in
:mod:`processors.stt._whisper_engine`). A shorter window encodes faster, but
Whisper was trained on 30 s windows and loops or doubts it heard speech on
short ones, and each such pass is decoded again on the full 30 s window (about
six times the encoding of 8 s). This measures both sides on the same audio:
every speech turn of the built-in corpus (its speech with 0.2 s either side,
as a whole-turn pass hears it) and the short clips of
:mod:`benchmarks.stt_short_clips`, clean and at 10 dB SNR, plus the non-speech
clips, each transcribed once per window by the cascade's Whisper model
(tiny.en, int8, 2 threads, guards on).

For each window it prints the pass time (p50, mean), the passes that needed a
retry, the repetition hallucinations left, and the transcripts that differ
from the first window's.

    python -m benchmarks.stt_window                 # windows 8, 2, 4, 6
    python -m benchmarks.stt_window --windows 8,5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Clip", "WindowRow", "corpus_clips", "main", "measure"]

_MARGIN_S = 0.2  # audio kept either side of a corpus turn's speech


@dataclass(frozen=True)
class Clip:
    """Audio to transcribe (PCM16, 16 kHz) with its reference ("" for non-speech)."""

    name: str
    reference: str
    pcm: bytes


@dataclass
class WindowRow:
    """What one window did over all clips."""

    window_s: float
    ms: list[float] = field(default_factory=list)
    retried: int = 0
    hallucinations: list[str] = field(default_factory=list)
    differ: list[tuple[str, str, str]] = field(default_factory=list)  # clip, first's, this


def corpus_clips() -> list[Clip]:
    """The built-in corpus's speech turns at 16 kHz, generated first if not cached."""
    from benchmarks.latency.corpus import load_corpus
    from benchmarks.latency.generate import builtin_corpus
    from framework.audio import resample

    corpus = load_corpus(builtin_corpus(), source="builtin")
    clips = []
    for conversation in corpus.conversations:
        for item in conversation.items:
            if not item.is_speech or item.speech_start_s is None or item.speech_end_s is None:
                continue
            pcm = resample(item.pcm, item.sample_rate, 16000)
            start = max(0, int((item.speech_start_s - _MARGIN_S) * 16000)) * 2
            end = int((item.speech_end_s + _MARGIN_S) * 16000) * 2
            clips.append(Clip(f"{item.conversation} {item.turn}", item.transcript, pcm[start:end]))
    return clips


def measure(clips: Sequence[Clip], windows: Sequence[float]) -> list[WindowRow]:
    """Transcribe every clip once per window; the first window is the reference."""
    from benchmarks.stt_short_clips import hallucination
    from processors.stt import _whisper_engine as engine

    model = engine.load_model(engine.default_model_dir(), "int8", 2)
    encodings: list[float] = []
    encode = engine.WhisperModel._encode

    def counted(self: engine.WhisperModel, samples: Any, window_s: float) -> Any:
        encodings.append(window_s)
        return encode(self, samples, window_s)

    first: dict[str, str] = {}
    rows = []
    engine.WhisperModel._encode = counted  # type: ignore[method-assign]
    try:
        for window in windows:
            options = engine.PassOptions(window_s=window)
            row = WindowRow(window)
            for clip in clips:
                encodings.clear()
                began = time.perf_counter()
                text = model.transcribe(clip.pcm, options) or ""
                row.ms.append((time.perf_counter() - began) * 1e3)
                row.retried += len(encodings) > 1
                if clip.reference and (why := hallucination(clip.reference, text)):
                    row.hallucinations.append(f"{clip.name}: {why}")
                if clip.name not in first:
                    first[clip.name] = text
                elif first[clip.name] != text:
                    row.differ.append((clip.name, first[clip.name], text))
            rows.append(row)
    finally:
        engine.WhisperModel._encode = encode  # type: ignore[method-assign]
        engine.release_model(model)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table for the windows asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="8,2,4,6", help="comma-separated seconds")
    args = parser.parse_args(argv)
    windows = [float(w) for w in args.windows.split(",") if w.strip()]
    from benchmarks.stt_short_clips import make_clips, non_speech_clips

    shorts = [*make_clips(None), *make_clips(10.0), *non_speech_clips()]
    clips = corpus_clips() + [Clip(c.name, c.text, c.pcm) for c in shorts]
    rows = measure(clips, windows)
    print(f"{len(clips)} clips; transcripts compared with the {windows[0]:g} s window's\n")
    print("| window (s) | pass p50 / mean (ms) | retried on 30 s | hallucinations | differ |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.window_s:g} | {statistics.median(row.ms):.0f} / {statistics.fmean(row.ms):.0f}"
            f" | {row.retried} | {len(row.hallucinations)} | {len(row.differ)} |"
        )
    for row in rows:
        for line in row.hallucinations:
            print(f"hallucination at {row.window_s:g} s: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
