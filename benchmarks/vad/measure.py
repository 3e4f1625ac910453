"""Measure VAD backends on synthetic noise and on Piper speech mixed with noise.

Run ``python -m benchmarks.vad.measure`` for the full tables of docs/vad.md; the
tests call the same functions with small sizes. Everything is deterministic:
noise comes from seeded generators and speech from :mod:`benchmarks.speech`.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmarks.speech import (
    SENTENCES,
    NoiseKind,
    Utterance,
    make_noise,
    mix_at_snr,
    synthesize_speech,
    utterances,
)
from framework.audio import float32_to_pcm16
from processors.vad.base import SpeechEvent, SpeechSegmenter, VADAnalyzer, VADParams
from processors.vad.turn import create_analyzer

__all__ = [
    "StreamResult",
    "backends",
    "run_vad",
    "score_noise",
    "score_speech",
]


@dataclass
class StreamResult:
    """What a VAD made of a stream: its windows' speech flags and the events."""

    flags: list[bool] = field(default_factory=list)
    raw_flags: list[bool] = field(default_factory=list)
    events: list[SpeechEvent] = field(default_factory=list)
    seconds_per_window: float = 0.0

    @property
    def starts(self) -> list[SpeechEvent]:
        """The start events."""
        return [e for e in self.events if e.kind == "start"]


def run_vad(
    analyzer: VADAnalyzer, params: VADParams, pcm: bytes, sample_rate: int, chunk_ms: int = 20
) -> StreamResult:
    """Feed ``pcm`` in ``chunk_ms`` chunks through ``analyzer`` and a segmenter."""
    analyzer.set_sample_rate(sample_rate)
    analyzer.load()
    segmenter = SpeechSegmenter(params)
    result = StreamResult()
    chunk = sample_rate * chunk_ms // 1000 * 2
    spent = 0.0
    count = 0
    for i in range(0, len(pcm), chunk):
        t0 = time.thread_time()  # CPU time: stable on a busy machine
        windows = analyzer.analyze(pcm[i : i + chunk])
        spent += time.thread_time() - t0
        count += len(windows)
        for window in windows:
            result.flags.append(segmenter.is_speech(window))
            result.raw_flags.append(window.confidence >= params.threshold)
            event = segmenter.update(window)
            if event is not None and event.kind in ("start", "stop"):  # turns, not pauses
                result.events.append(event)
    if segmenter.speaking:  # close a turn still open at the end of the stream
        end = len(pcm) / 2 / sample_rate
        result.events.append(SpeechEvent("stop", end, end))
    result.seconds_per_window = spent / max(count, 1)
    return result


def score_noise(
    make: Callable[[], VADAnalyzer],
    params: VADParams,
    kind: NoiseKind,
    level_dbfs: float,
    seconds: float = 10.0,
    sample_rate: int = 16000,
) -> dict[str, float]:
    """Noise only: fraction of windows flagged (raw and after the level gate), false turns."""
    noise = make_noise(kind, level_dbfs, seconds, sample_rate, seed=1)
    result = run_vad(make(), params, float32_to_pcm16(noise), sample_rate)
    n = max(len(result.flags), 1)
    return {
        "raw_flagged": sum(result.raw_flags) / n,
        "flagged": sum(result.flags) / n,
        "false_turns": float(len(result.starts)),
        "us_per_window": result.seconds_per_window * 1e6,
    }


def score_speech(
    make: Callable[[], VADAnalyzer],
    params: VADParams,
    speech: Sequence[Utterance],
    snr_db: float | None,
    kind: NoiseKind = "white",
    gap_s: float = 1.5,
    sample_rate: int = 16000,
) -> dict[str, float]:
    """Utterances separated by ``gap_s``, noise under everything at ``snr_db`` (None: clean).

    Returns the hit rate (utterances matched by turns that overlap no other
    utterance), the number of turns, false turns (overlapping no utterance),
    merged turns (spanning several utterances), and for the hits the medians of
    start/stop decision latency and of the error of the estimated start and end
    against the true bounds, in ms.
    """
    gap = np.zeros(round(gap_s * sample_rate))
    parts, spans, t = [gap], [], gap.size / sample_rate
    for u in speech:
        x = np.frombuffer(u.pcm, dtype="<i2").astype(np.float64) / 32768.0
        spans.append((t + u.start_s, t + u.end_s))
        parts += [x, gap]
        t += (x.size + gap.size) / sample_rate
    clean = np.concatenate(parts)
    if snr_db is None:
        mixed = clean
    else:
        noise = make_noise(kind, -30.0, clean.size / sample_rate, sample_rate, seed=2)
        mixed = mix_at_snr(clean, noise, snr_db, sample_rate)
    result = run_vad(make(), params, float32_to_pcm16(np.clip(mixed, -1, 1)), sample_rate)
    turns = list(zip(result.events[0::2], result.events[1::2], strict=True))
    covers = [
        [j for j, (s0, s1) in enumerate(spans) if a.speech_s < s1 and b.speech_s > s0]
        for a, b in turns
    ]
    start_lat, stop_lat, start_err, end_err = [], [], [], []
    hits = 0
    for j, (s0, s1) in enumerate(spans):
        mine = [turns[i] for i, c in enumerate(covers) if c == [j]]
        if not mine:  # missed, or only inside a turn merged with a neighbour
            continue
        hits += 1
        start_lat.append(mine[0][0].decided_s - s0)
        stop_lat.append(mine[-1][1].decided_s - s1)
        start_err.append(mine[0][0].speech_s - s0)
        end_err.append(mine[-1][1].speech_s - s1)

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000 if values else math.nan

    return {
        "hit_rate": hits / len(spans),
        "turns": float(len(turns)),
        "false_turns": float(sum(1 for c in covers if not c)),
        "merged": float(sum(1 for c in covers if len(c) > 1)),
        "start_latency_ms": med(start_lat),
        "stop_latency_ms": med(stop_lat),
        "start_error_ms": med(start_err),
        "end_error_ms": med(end_err),
    }


def backends() -> dict[str, tuple[Callable[[], VADAnalyzer], VADParams]]:
    """The configurations compared in docs/vad.md."""
    base = VADParams()
    configs = {
        "silero": ("silero", base),
        "webrtc-3": ("webrtc", base),
        "webrtc-1": ("webrtc", base.model_copy(update={"aggressiveness": 1})),
    }
    return {
        label: (functools.partial(create_analyzer, params, backend), params)
        for label, (backend, params) in configs.items()
    }


def _fmt(value: float, pct: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 100:.0f}%" if pct else f"{value:.0f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the noise and speech tables of docs/vad.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--noise-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    configs = backends()
    noise_conditions: list[tuple[NoiseKind, float]] = [
        (kind, level) for kind in ("white", "pink", "brown", "pink-4hz") for level in (-40.0, -30.0)
    ]
    print("| backend | noise | raw flagged | flagged (level gate) | false turns | CPU us/window |")
    print("|---|---|---|---|---|---|")
    for label, (make, params) in configs.items():
        for kind, level in noise_conditions:
            r = score_noise(make, params, kind, level, args.noise_seconds)
            print(
                f"| {label} | {kind} {level:.0f} dBFS | {_fmt(r['raw_flagged'], True)} | "
                f"{_fmt(r['flagged'], True)} | {r['false_turns']:.0f} | {r['us_per_window']:.0f} |"
            )
    speech = utterances(synthesize_speech(SENTENCES[: args.sentences]))
    print()
    print(
        "| backend | speech | hit rate | turns | false | merged | start decided (ms) "
        "| stop decided (ms) | start error (ms) | end error (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    conditions: list[tuple[float | None, NoiseKind]] = [(None, "white")]
    conditions += [
        (snr, kind) for kind in ("white", "pink", "pink-4hz") for snr in (20.0, 10.0, 5.0)
    ]
    for label, (make, params) in configs.items():
        for snr, kind in conditions:
            r = score_speech(make, params, speech, snr, kind)
            name = "clean" if snr is None else f"{kind} SNR {snr:.0f} dB"
            print(
                f"| {label} | {name} | {_fmt(r['hit_rate'], True)} | {r['turns']:.0f} | "
                f"{r['false_turns']:.0f} | {r['merged']:.0f} | "
                f"{_fmt(r['start_latency_ms'])} | {_fmt(r['stop_latency_ms'])} | "
                f"{_fmt(r['start_error_ms'])} | {_fmt(r['end_error_ms'])} |"
            )


if __name__ == "__main__":
    main()
