"""Tests for framework.audio.pcm: float conversion, channel mixing, interleaving."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from framework.audio import (
    convert_channels,
    float32_to_pcm16,
    interleave,
    pcm16_to_float32,
    pcm_duration_s,
    to_mono,
)
from framework.frames.audio import InputAudioFrame


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def samples_of(data: bytes) -> list[int]:
    out: list[int] = np.frombuffer(data, dtype="<i2").tolist()
    return out


pcm_bytes = st.lists(st.integers(-32768, 32767), max_size=300).map(lambda s: pcm(*s))


def test_pcm16_to_float32_scales_by_32768() -> None:
    out = pcm16_to_float32(pcm(0, 16384, -16384, 32767, -32768))
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, 0.5, -0.5, 32767 / 32768, -1.0]


def test_pcm16_to_float32_accepts_int16_array_and_keeps_shape() -> None:
    arr = np.array([[1, -1], [32767, -32768]], dtype=np.int16)
    out = pcm16_to_float32(arr)
    assert out.shape == (2, 2)
    assert out[1, 1] == -1.0


def test_pcm16_to_float32_rejects_other_arrays() -> None:
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_float32(np.zeros(3, dtype=np.float32))


def test_float32_to_pcm16_rounds_and_clips() -> None:
    out = float32_to_pcm16(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 1.4 / 32768]))
    assert samples_of(out) == [0, 16384, -16384, 32767, -32768, 32767, -32768, 1]


def test_float32_to_pcm16_maps_nan_to_silence_and_inf_to_full_scale() -> None:
    out = float32_to_pcm16(np.array([np.nan, np.inf, -np.inf], dtype=np.float32))
    assert samples_of(out) == [0, 32767, -32768]


def test_float32_to_pcm16_flattens_frames_in_interleaved_order() -> None:
    out = float32_to_pcm16(np.array([[0.5, -0.5], [0.25, -0.25]], dtype=np.float32))
    assert samples_of(out) == [16384, -16384, 8192, -8192]


def test_float32_to_pcm16_rejects_bytes() -> None:
    with pytest.raises(TypeError, match="float samples"):
        float32_to_pcm16(b"\x00\x00")


@given(pcm_bytes)
def test_pcm_float_pcm_round_trip_is_exact(data: bytes) -> None:
    assert float32_to_pcm16(pcm16_to_float32(data)) == data


@given(
    hnp.arrays(
        np.float32,
        st.integers(0, 200),
        elements=st.floats(-1.0, 1.0, width=32, allow_nan=False),
    )
)
def test_float_pcm_float_round_trip_within_half_step(x: np.ndarray) -> None:
    back = pcm16_to_float32(float32_to_pcm16(x))
    # Half a quantisation step, except +1.0 which saturates at 32767/32768.
    assert np.all(np.abs(back - x) <= 1 / 32768 + 1e-7)


def test_to_mono_averages_channels_with_rounding() -> None:
    stereo = pcm(100, 200, -3, 0, 32767, 32767, -32768, -32768, 1, 2)
    assert samples_of(to_mono(stereo, 2)) == [150, -2, 32767, -32768, 2]


def test_to_mono_three_channels() -> None:
    assert samples_of(to_mono(pcm(3, 6, 9, -1, -1, -1), 3)) == [6, -1]


def test_to_mono_passes_mono_through() -> None:
    data = pcm(1, 2, 3)
    assert to_mono(data, 1) is data


def test_to_mono_rejects_partial_frames() -> None:
    with pytest.raises(ValueError, match="multiple of 4 bytes, got 6"):
        to_mono(pcm(1, 2, 3), 2)


def test_convert_channels() -> None:
    mono = pcm(5, -7)
    assert samples_of(convert_channels(mono, 1, 2)) == [5, 5, -7, -7]
    assert samples_of(convert_channels(pcm(4, 6), 2, 1)) == [5]
    assert convert_channels(mono, 1, 1) is mono
    with pytest.raises(ValueError, match="cannot convert 2-channel audio to 3"):
        convert_channels(pcm(1, 2), 2, 3)


def test_interleave_pads_shorter_stream_with_silence() -> None:
    assert samples_of(interleave(pcm(1, 2, 3), pcm(-1))) == [1, -1, 2, 0, 3, 0]
    assert samples_of(interleave(pcm(), pcm(7, 8))) == [0, 7, 0, 8]
    assert interleave(b"", b"") == b""


@given(pcm_bytes, pcm_bytes)
def test_interleave_then_split_recovers_both_streams(left: bytes, right: bytes) -> None:
    frames = np.frombuffer(interleave(left, right), dtype="<i2").reshape(-1, 2)
    assert frames[: len(left) // 2, 0].tobytes() == left
    assert frames[: len(right) // 2, 1].tobytes() == right
    assert not frames[len(left) // 2 :, 0].any()
    assert not frames[len(right) // 2 :, 1].any()


def test_pcm_duration_s() -> None:
    assert pcm_duration_s(bytes(32000), 16000) == 1.0
    assert pcm_duration_s(bytes(3200), 8000, num_channels=2) == 0.1


@pytest.mark.parametrize(
    "bad",
    ["\x00\x00", 123, None, np.zeros(2, dtype=np.int16)],
    ids=["str", "int", "None", "ndarray"],
)
def test_byte_functions_reject_non_bytes(bad: object) -> None:
    with pytest.raises(TypeError, match="must be PCM16 audio as bytes"):
        to_mono(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be PCM16 audio as bytes"):
        interleave(b"", bad)  # type: ignore[arg-type]


def test_byte_functions_reject_frames_with_a_hint() -> None:
    frame = InputAudioFrame(audio=pcm(1, 2), sample_rate=16000)
    with pytest.raises(TypeError, match=r"got InputAudioFrame \(pass frame.audio\)"):
        to_mono(frame, 1)  # type: ignore[arg-type]


def test_byte_functions_accept_bytearray_and_memoryview() -> None:
    assert to_mono(bytearray(pcm(1, 3)), 2) == pcm(2)
    assert pcm16_to_float32(memoryview(pcm(16384))).tolist() == [0.5]


def test_odd_length_pcm_is_rejected() -> None:
    with pytest.raises(ValueError, match="PCM16 audio must have an even number of bytes, got 3"):
        pcm16_to_float32(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even number of bytes, got 1"):
        interleave(b"\x00", b"")


@pytest.mark.parametrize("channels", [0, -2])
def test_non_positive_channel_count_is_rejected(channels: int) -> None:
    with pytest.raises(ValueError, match=f"num_channels must be positive, got {channels}"):
        to_mono(b"", channels)
