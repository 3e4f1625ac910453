"""Tests for framework.audio.signals: synthetic tones."""

from __future__ import annotations

import numpy as np
import pytest

from framework.audio import peak, rms, sine_wave


def test_sine_wave_length_level_and_frequency() -> None:
    data = sine_wave(1000, 16000, 0.5, amplitude=0.5)
    x = np.frombuffer(data, dtype="<i2")
    assert x.size == 8000
    assert peak(data) == pytest.approx(0.5, rel=1e-3)
    assert rms(data) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.fft.rfftfreq(x.size, 1 / 16000)[np.argmax(spectrum)] == 1000


def test_sine_wave_full_scale_does_not_clip_and_channels_match() -> None:
    x = np.frombuffer(sine_wave(250, 8000, 0.1, 1.0, num_channels=3), dtype="<i2").reshape(-1, 3)
    assert x.shape == (800, 3)
    assert x.max() == 32767
    assert x.min() == -32767
    assert (x == x[:, :1]).all()


def test_sine_wave_empty_and_invalid() -> None:
    assert sine_wave(440, 16000, 0.0) == b""
    with pytest.raises(ValueError, match=r"amplitude must be between 0 and 1, got 1\.5"):
        sine_wave(440, 16000, 1.0, 1.5)
    with pytest.raises(ValueError, match="duration_s must be a non-negative number, got -1"):
        sine_wave(440, 16000, -1)
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        sine_wave(440, 0, 1.0)
