"""Signal levels of PCM16 audio: RMS, peak, dBFS and a silence test.

Levels are relative to digital full scale (32768). dBFS here is the RMS level,
so a full-scale square wave reads 0 dBFS and a full-scale sine about -3.01 dBFS.
"""

from __future__ import annotations

import math

import numpy as np

from framework.audio._checks import BytesLike, as_int16, check_pcm16

__all__ = ["dbfs", "is_silent", "peak", "rms"]

_FULL_SCALE = 32768.0


def rms(pcm: BytesLike) -> float:
    """Return the root-mean-square level of PCM16 audio in ``[0.0, 1.0]``.

    All channels are pooled. Empty audio has level 0.
    """
    samples = as_int16(check_pcm16(pcm))
    if not samples.size:
        return 0.0
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    return math.sqrt(mean_square) / _FULL_SCALE


def peak(pcm: BytesLike) -> float:
    """Return the largest absolute sample of PCM16 audio in ``[0.0, 1.0]`` (0 if empty)."""
    samples = as_int16(check_pcm16(pcm))
    if not samples.size:
        return 0.0
    return float(np.max(np.abs(samples.astype(np.int32)))) / _FULL_SCALE


def dbfs(pcm: BytesLike) -> float:
    """Return the RMS level of PCM16 audio in dB relative to full scale.

    The result is at most 0.0; digital silence (or empty audio) gives ``-inf``.
    """
    level = rms(pcm)
    if level == 0.0:
        return float("-inf")
    return 20.0 * math.log10(level)


def is_silent(pcm: BytesLike, threshold_dbfs: float = -60.0) -> bool:
    """Return True when the RMS level of PCM16 audio is below ``threshold_dbfs``."""
    return dbfs(pcm) < threshold_dbfs
