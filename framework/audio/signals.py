"""Synthetic test signals as PCM16: tones for tests, probes and benchmarks."""

from __future__ import annotations

import math

import numpy as np

from framework.audio._checks import check_channels, check_rate
from framework.audio.pcm import float32_to_pcm16

__all__ = ["sine_wave"]


def sine_wave(
    freq_hz: float,
    sample_rate: int,
    duration_s: float,
    amplitude: float = 0.5,
    num_channels: int = 1,
) -> bytes:
    """Return a sine tone as PCM16 bytes, the same tone on every channel.

    ``amplitude`` is relative to full scale (1.0 peaks at 32767). The length is
    ``duration_s`` rounded to the nearest whole sample.
    """
    sample_rate = check_rate(sample_rate)
    num_channels = check_channels(num_channels)
    for name, value in (("freq_hz", freq_hz), ("duration_s", duration_s)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value}")
    if not math.isfinite(amplitude) or not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be between 0 and 1, got {amplitude}")
    t = np.arange(round(sample_rate * duration_s)) / sample_rate
    # Scale by 32767/32768 so amplitude 1.0 peaks at 32767 instead of clipping.
    tone = amplitude * (32767 / 32768) * np.sin(2 * np.pi * freq_hz * t)
    return float32_to_pcm16(np.repeat(tone, num_channels))
