"""Tests for framework.audio.resample: one-shot and streaming sample-rate conversion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.audio import Quality, StreamResampler, interleave, resample, sine_wave

QUALITIES: list[Quality] = ["HQ", "LD"]  # soxr's default, and the low-delay filter


def samples(data: bytes, num_channels: int = 1) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").reshape(-1, num_channels).astype(np.int64)


def dominant_freq(data: bytes, sample_rate: int) -> float:
    x = samples(data)[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sample_rate)[np.argmax(spectrum)])


def stream(resampler: StreamResampler, data: bytes, sizes: list[int]) -> bytes:
    frame = 2 * resampler.num_channels
    out, pos = [], 0
    for size in sizes:
        out.append(resampler.process(data[pos : pos + size * frame]))
        pos += size * frame
    out.append(resampler.process(data[pos:]))
    out.append(resampler.flush())
    return b"".join(out)


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize(("from_rate", "to_rate"), [(16000, 24000), (48000, 16000), (8000, 44100)])
def test_resample_keeps_duration_and_pitch(from_rate: int, to_rate: int, quality: Quality) -> None:
    data = sine_wave(440, from_rate, 0.5)
    out = resample(data, from_rate, to_rate, quality=quality)
    assert len(out) // 2 == round(len(data) // 2 * to_rate / from_rate)
    assert abs(dominant_freq(out, to_rate) - 440) < 5


@pytest.mark.parametrize("quality", QUALITIES)
def test_resample_stereo_keeps_channels_apart(quality: Quality) -> None:
    data = interleave(sine_wave(300, 16000, 0.25, 0.8), sine_wave(300, 16000, 0.25, 0.4))
    out = samples(resample(data, 16000, 8000, num_channels=2, quality=quality), 2)
    assert out.shape == (2000, 2)
    left, right = np.abs(out[200:-200]).max(axis=0)
    assert abs(left / right - 2.0) < 0.05


def test_same_rate_is_a_passthrough() -> None:
    data = sine_wave(440, 16000, 0.5)
    assert resample(data, 16000, 16000) is data
    resampler = StreamResampler(16000, 16000)
    assert resampler.passthrough
    assert resampler.process(data) is data
    assert resampler.flush() == b""


def test_empty_input() -> None:
    assert resample(b"", 16000, 8000) == b""
    resampler = StreamResampler(16000, 8000)
    assert resampler.process(b"") == b""
    assert resampler.flush() == b""


@pytest.mark.parametrize("bad", [0, -8000])
def test_non_positive_rates_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=f"from_rate must be positive, got {bad}"):
        resample(b"", bad, 16000)
    with pytest.raises(ValueError, match=f"to_rate must be positive, got {bad}"):
        resample(b"", 16000, bad)
    with pytest.raises(ValueError, match=f"to_rate must be positive, got {bad}"):
        StreamResampler(16000, bad)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="from_rate must be an int, got float"):
        resample(b"", 16000.0, 8000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality must be one of"):
        StreamResampler(16000, 8000, quality="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 4 bytes, got 6"):
        resample(bytes(6), 16000, 8000, num_channels=2)
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        StreamResampler(16000, 8000).process(b"abc")
    with pytest.raises(TypeError, match="must be PCM16 audio as bytes, got str"):
        StreamResampler(16000, 8000).process("abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "num_channels"),
    [(16000, 24000, 1), (24000, 16000, 1), (44100, 16000, 2), (8000, 48000, 1)],
)
@pytest.mark.parametrize("quality", QUALITIES)
def test_stream_matches_one_shot(
    from_rate: int, to_rate: int, num_channels: int, quality: Quality
) -> None:
    data = sine_wave(440, from_rate, 0.3, 0.7, num_channels)
    one_shot = samples(resample(data, from_rate, to_rate, num_channels, quality), num_channels)
    rng = np.random.default_rng(from_rate + to_rate)
    sizes = rng.integers(1, 700, size=200).tolist()
    resampler = StreamResampler(from_rate, to_rate, num_channels, quality)
    streamed = samples(stream(resampler, data, sizes), num_channels)
    assert streamed.shape == one_shot.shape
    assert np.array_equal(streamed, one_shot)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=30), st.sampled_from(QUALITIES))
def test_stream_equals_one_shot_for_any_chunking(sizes: list[int], quality: Quality) -> None:
    data = sine_wave(1000, 16000, 0.2, 0.9)
    one_shot = resample(data, 16000, 22050, quality=quality)
    assert stream(StreamResampler(16000, 22050, quality=quality), data, sizes) == one_shot


def test_resampling_is_deterministic() -> None:
    data = sine_wave(440, 16000, 0.1)
    assert resample(data, 16000, 24000) == resample(data, 16000, 24000)


@pytest.mark.parametrize("quality", QUALITIES)
def test_flush_resets_for_the_next_stream(quality: Quality) -> None:
    data = sine_wave(440, 16000, 0.1)
    resampler = StreamResampler(16000, 8000, quality=quality)
    first = resampler.process(data) + resampler.flush()
    second = resampler.process(data) + resampler.flush()
    assert first == second


@pytest.mark.parametrize("quality", QUALITIES)
def test_reset_drops_pending_audio(quality: Quality) -> None:
    data = sine_wave(440, 16000, 0.1)
    fresh = StreamResampler(16000, 8000, quality=quality)
    expected = fresh.process(data) + fresh.flush()
    resampler = StreamResampler(16000, 8000, quality=quality)
    resampler.process(sine_wave(3000, 16000, 0.05, 0.9))
    resampler.reset()
    assert resampler.process(data) + resampler.flush() == expected


def test_properties_and_repr() -> None:
    resampler = StreamResampler(16000, 8000, num_channels=2, quality="VHQ")
    assert (resampler.from_rate, resampler.to_rate, resampler.num_channels) == (16000, 8000, 2)
    assert not resampler.passthrough
    assert repr(resampler) == "StreamResampler(16000, 8000, num_channels=2, quality='VHQ')"


# The float32 conversions around soxr are a faster path to the public converters'
# result: both must give the same bytes.

_RATES = st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000])


def _reference(data: bytes, from_rate: int, to_rate: int, num_channels: int) -> bytes:
    """Resampling through the public float converters (float64 rounding, NaN checks)."""
    import soxr

    from framework.audio import float32_to_pcm16, pcm16_to_float32

    frames = pcm16_to_float32(data).reshape(-1, num_channels)
    return float32_to_pcm16(soxr.resample(frames, from_rate, to_rate, quality="HQ"))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-32768, 32767), min_size=1, max_size=3000),
    from_rate=_RATES,
    to_rate=_RATES,
    num_channels=st.sampled_from([1, 2]),
)
def test_resample_gives_the_public_converters_bytes(
    values: list[int], from_rate: int, to_rate: int, num_channels: int
) -> None:
    values = values[: len(values) - len(values) % num_channels] or [0] * num_channels
    data = np.array(values, dtype="<i2").tobytes()
    expected = data if from_rate == to_rate else _reference(data, from_rate, to_rate, num_channels)
    assert resample(data, from_rate, to_rate, num_channels) == expected


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-32768, 32767), min_size=1, max_size=4000),
    from_rate=_RATES,
    to_rate=_RATES,
    sizes=st.lists(st.integers(0, 700), max_size=8),
)
def test_stream_gives_the_public_converters_bytes(
    values: list[int], from_rate: int, to_rate: int, sizes: list[int]
) -> None:
    data = np.array(values, dtype="<i2").tobytes()
    expected = data if from_rate == to_rate else _reference(data, from_rate, to_rate, 1)
    assert stream(StreamResampler(from_rate, to_rate), data, sizes) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(-(2.0**100), 2.0**100, width=32)
        | st.floats(-1.5, 1.5, width=32)
        | st.integers(-40000, 40000).map(lambda k: k / 32768),
        min_size=0,
        max_size=200,
    )
)
def test_float32_to_pcm16_fast_path_matches_the_public_one(values: list[float]) -> None:
    from framework.audio import float32_to_pcm16
    from framework.audio.resample import _to_pcm16

    arr = np.array(values, dtype=np.float32)
    assert _to_pcm16(arr.copy()) == float32_to_pcm16(arr)


def test_float32_to_pcm16_fast_path_rounds_halves_to_even_and_saturates() -> None:
    from framework.audio.resample import _to_pcm16

    halves = np.array([0.5, 1.5, -0.5, -2.5, 40000.0, -40000.0], dtype=np.float32) / 32768
    assert np.frombuffer(_to_pcm16(halves), "<i2").tolist() == [0, 2, 0, -2, 32767, -32768]
