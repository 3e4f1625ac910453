"""The low-delay resampler: what it holds back, where its output sits, what its filter passes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.resample import held_back_ms
from framework.audio import LISTENING_QUALITY, StreamResampler, sine_wave
from framework.audio.lowdelay import LowDelayStream

RATES = [(16000, 24000), (24000, 16000), (48000, 16000), (44100, 16000), (8000, 16000)]


@pytest.mark.parametrize(("from_rate", "to_rate"), RATES)
def test_a_live_stream_is_held_back_about_a_millisecond(from_rate: int, to_rate: int) -> None:
    _mean, low = held_back_ms("LD", from_rate, to_rate)  # the worst after any chunk
    _mean, soxr_lq = held_back_ms("LQ", from_rate, to_rate)
    assert low <= 2.5  # the filter's group delay, whatever the chunking
    assert low < soxr_lq
    assert LISTENING_QUALITY == "LD"


@pytest.mark.parametrize(("from_rate", "to_rate"), RATES)
def test_the_output_is_aligned_with_the_input(from_rate: int, to_rate: int) -> None:
    # A 440 Hz tone comes out as the same tone at the same phase: no delay left in it.
    stream = LowDelayStream(from_rate, to_rate, 1)
    t_in = np.arange(from_rate // 2) / from_rate
    out = stream.resample_chunk((0.5 * np.sin(2 * np.pi * 440 * t_in))[:, None].astype("f4"), True)
    t_out = np.arange(out.shape[0]) / to_rate
    middle = slice(out.shape[0] // 4, 3 * out.shape[0] // 4)
    expected = 0.5 * np.sin(2 * np.pi * 440 * t_out)
    assert out.shape[0] == -(-t_in.size * to_rate // from_rate)
    assert np.abs(out[middle, 0] - expected[middle]).max() < 1e-3


@pytest.mark.parametrize(("from_rate", "to_rate"), [(24000, 16000), (48000, 16000), (44100, 16000)])
def test_tones_above_the_new_nyquist_are_removed_and_speech_band_passes(
    from_rate: int, to_rate: int
) -> None:
    def level_db(freq: float) -> float:
        tone = sine_wave(freq, from_rate, 0.5, 0.5)
        out = StreamResampler(from_rate, to_rate, quality="LD")
        y = np.frombuffer(out.process(tone) + out.flush(), "<i2").astype(np.float64)
        middle = y[y.size // 4 : 3 * y.size // 4]
        return float(20 * np.log10(np.sqrt(np.mean(middle**2)) / (0.5 * 32767 / np.sqrt(2))))

    assert abs(level_db(300.0)) < 0.1
    assert abs(level_db(0.4 * to_rate)) < 0.1  # 6.4 kHz at 16 kHz
    # A tone at 9 kHz would fold to 7 kHz at 16 kHz; the filter takes it 60 dB down.
    assert level_db(0.56 * to_rate) < -60.0
