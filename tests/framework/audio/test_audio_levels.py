"""Tests for framework.audio.levels: RMS, peak, dBFS and silence detection."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.audio import dbfs, is_silent, peak, rms, sine_wave


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def test_silence_and_empty_audio() -> None:
    assert rms(bytes(640)) == 0.0
    assert rms(b"") == 0.0
    assert peak(b"") == 0.0
    assert dbfs(bytes(640)) == float("-inf")
    assert dbfs(b"") == float("-inf")
    assert is_silent(bytes(640))
    assert is_silent(b"")


def test_full_scale_square_wave_is_0_dbfs() -> None:
    square = pcm(-32768, -32768, -32768, -32768)
    assert rms(square) == 1.0
    assert peak(square) == 1.0
    assert dbfs(square) == 0.0


def test_sine_levels() -> None:
    data = sine_wave(1000, 16000, 1.0, 0.5)
    assert rms(data) == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert peak(data) == pytest.approx(0.5, rel=1e-3)
    assert dbfs(data) == pytest.approx(-6.02 - 3.01, abs=0.02)


def test_is_silent_threshold() -> None:
    quiet = sine_wave(440, 16000, 0.5, 10 ** (-70 / 20) * math.sqrt(2))  # about -70 dBFS
    assert dbfs(quiet) == pytest.approx(-70, abs=0.5)
    assert is_silent(quiet)
    assert not is_silent(quiet, threshold_dbfs=-80)
    assert not is_silent(sine_wave(440, 16000, 0.5, 0.01))


def test_dc_offset_counts_as_level() -> None:
    assert rms(pcm(16384, 16384)) == 0.5
    assert dbfs(pcm(16384, 16384)) == pytest.approx(-6.0206, abs=1e-4)


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_levels_are_in_range(samples: list[int]) -> None:
    data = pcm(*samples)
    assert 0.0 <= rms(data) <= peak(data) <= 1.0
    assert dbfs(data) <= 0.0
    assert (dbfs(data) == float("-inf")) == (not any(samples))


def test_levels_validate_input() -> None:
    with pytest.raises(ValueError, match="PCM16 audio must have an even number of bytes, got 3"):
        rms(b"abc")
    bad: Any = "abcd"
    for func in (rms, peak, dbfs, is_silent):
        with pytest.raises(TypeError, match="must be PCM16 audio as bytes, got str"):
            func(bad)
