"""Streaming resamplers for live input: what each holds back, costs, and does to recognition.

Run ``python -m benchmarks.resample`` (about a minute). For soxr's ``LQ`` and
``HQ`` and Parley's low-delay ``LD`` (:mod:`framework.audio.lowdelay`):

* held back: fed 20 ms chunks of noise, how much of the input the output lags
  after each chunk (mean and worst over 200 chunks) at the rate pairs a voice
  pipeline meets: the Realtime client's 16 -> 24 kHz, ``parley serve``'s 24 -> 16
  kHz, a browser's 48 -> 16 kHz;
* cost: microseconds of CPU per 20 ms chunk;
* recognition: Whisper tiny.en's WER on the built-in corpus' sentences spoken by
  Piper at 24 kHz (its full band, up to 11 kHz) and streamed down to 16 kHz in
  20 ms chunks, clean and with white noise at 10 dB SNR (the case where a weak
  anti-aliasing filter folds the most noise into the speech band).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from framework.audio import Quality, StreamResampler

__all__ = ["cost_us", "held_back_ms", "main", "recognition_wer"]

QUALITIES: tuple[Quality, ...] = ("HQ", "LQ", "LD")
PAIRS = ((16000, 24000), (24000, 16000), (48000, 16000))


def held_back_ms(quality: Quality, from_rate: int, to_rate: int) -> tuple[float, float]:
    """Mean and worst lag of the output behind the input, in ms, over 200 chunks of 20 ms."""
    resampler = StreamResampler(from_rate, to_rate, quality=quality)
    rng = np.random.default_rng(0)
    chunk = from_rate // 50
    given = produced = 0
    lags = []
    for _ in range(200):
        noise = (rng.standard_normal(chunk) * 3000).astype("<i2").tobytes()
        produced += len(resampler.process(noise)) // 2
        given += chunk
        lags.append(given * 1000 / from_rate - produced * 1000 / to_rate)
    steady = lags[20:]
    return float(np.mean(steady)), float(np.max(steady))


def cost_us(quality: Quality, from_rate: int, to_rate: int, chunks: int = 2000) -> float:
    """CPU microseconds per 20 ms chunk."""
    resampler = StreamResampler(from_rate, to_rate, quality=quality)
    chunk = (np.random.default_rng(1).standard_normal(from_rate // 50) * 3000).astype("<i2")
    data = chunk.tobytes()
    for _ in range(50):
        resampler.process(data)
    began = time.process_time()
    for _ in range(chunks):
        resampler.process(data)
    return (time.process_time() - began) / chunks * 1e6


def recognition_wer(qualities: Sequence[Quality], snr_db: float | None) -> dict[str, float]:
    """Mean WER of Whisper tiny.en on the corpus sentences, 24 -> 16 kHz with each quality."""
    from benchmarks.latency.script import CONVERSATIONS
    from benchmarks.latency.wer import wer
    from benchmarks.speech import synthesize_speech
    from processors.stt._whisper_engine import PassOptions, default_model_dir, load_model

    texts = sorted({line.spoken for lines in CONVERSATIONS.values() for line in lines if line.text})
    model = load_model(default_model_dir(), "int8", 2)
    rng = np.random.default_rng(1)
    errors: dict[str, list[float]] = {q: [] for q in qualities}
    for text, pcm in zip(texts, synthesize_speech(texts, 24000), strict=True):
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        if snr_db is not None:
            level = np.sqrt(np.mean(x[np.abs(x) > 300] ** 2)) / 10 ** (snr_db / 20)
            x = x + rng.standard_normal(x.size) * level
        audio = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
        for quality in qualities:
            resampler = StreamResampler(24000, 16000, quality=quality)
            step = 24000 // 50 * 2
            out = b"".join(
                resampler.process(audio[i : i + step]) for i in range(0, len(audio), step)
            )
            heard = model.transcribe(out + resampler.flush(), PassOptions()) or ""
            errors[quality].append(wer(text, heard))
    return {q: 100 * float(np.mean(e)) for q, e in errors.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-wer", action="store_true", help="skip the recognition test")
    args = parser.parse_args(argv)
    print("| quality | " + " | ".join(f"{a // 1000} -> {b // 1000} kHz" for a, b in PAIRS) + " |")
    print("|---|" + "---:|" * len(PAIRS))
    for quality in QUALITIES:
        cells = []
        for a, b in PAIRS:
            mean, worst = held_back_ms(quality, a, b)
            cells.append(f"{mean:.1f} / {worst:.1f} ms, {cost_us(quality, a, b):.0f} us")
        print(f"| {quality} | " + " | ".join(cells) + " |")
    print("(held back: mean / worst over 20 ms chunks; CPU per 20 ms chunk)")
    if not args.no_wer:
        for snr in (None, 10.0):
            scores = recognition_wer(QUALITIES, snr)
            label = "clean" if snr is None else f"white noise, {snr:g} dB SNR"
            print(
                f"WER, 24 -> 16 kHz, {label}: "
                + ", ".join(f"{q} {v:.2f} %" for q, v in scores.items())
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
