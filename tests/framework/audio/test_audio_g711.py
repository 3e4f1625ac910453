"""Tests for framework.audio.g711: ITU-T G.711 mu-law and A-law."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from framework.audio import BytesLike, alaw_decode, alaw_encode, sine_wave, ulaw_decode, ulaw_encode

Codec = Callable[[BytesLike], bytes]
CODECS = pytest.mark.parametrize(
    ("encode", "decode"),
    [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)],
    ids=["ulaw", "alaw"],
)
ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def ints(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int64)


def test_known_values() -> None:
    assert ulaw_encode(b"\x00\x00") == b"\xff"
    assert alaw_encode(b"\x00\x00") == b"\xd5"
    assert ints(ulaw_decode(b"\xff\x7f\x80\x00")).tolist() == [0, 0, 32124, -32124]
    assert ints(alaw_decode(b"\xd5\x55\xaa\x2a")).tolist() == [8, -8, 32256, -32256]
    full_scale = np.array([32767, -32768], dtype="<i2").tobytes()
    assert ulaw_encode(full_scale) == b"\x80\x00"
    assert alaw_encode(full_scale) == b"\xaa\x2a"


@CODECS
def test_one_byte_per_sample(encode: Codec, decode: Codec) -> None:
    assert len(encode(bytes(320))) == 160
    assert len(decode(bytes(160))) == 320
    assert encode(b"") == b""
    assert decode(b"") == b""


@CODECS
def test_round_trip_error_is_within_half_a_quantisation_step(encode: Codec, decode: Codec) -> None:
    # Every int16 value. Steps are 1/16 of the segment's lower bound, so half a
    # step is at most |x| / 32; the constant covers the finest segments.
    x = ints(ALL_SAMPLES)
    error = np.abs(ints(decode(encode(ALL_SAMPLES))) - x)
    assert np.all(error <= np.abs(x) / 32 + 8)


@CODECS
def test_round_trip_keeps_sign_and_is_monotonic(encode: Codec, decode: Codec) -> None:
    y = ints(decode(encode(ALL_SAMPLES)))
    assert np.all(np.diff(y) >= 0)
    x = ints(ALL_SAMPLES)
    assert np.all(y[x > 8] > 0)
    assert np.all(y[x < -8] < 0)


def test_alaw_codes_round_trip_exactly() -> None:
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_ulaw_codes_round_trip_exactly_except_negative_zero() -> None:
    back = ulaw_encode(ulaw_decode(ALL_CODES))
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # 0x7F is mu-law's "negative zero": decodes to 0, encodes as 0xFF
    assert back == bytes(expected)


@CODECS
def test_decode_tables_are_distinct_and_symmetric(encode: Codec, decode: Codec) -> None:
    values = ints(decode(ALL_CODES))
    assert sorted(set(values.tolist())) == sorted(set((-values).tolist()))
    assert len(set(values.tolist())) == (255 if encode is ulaw_encode else 256)


@CODECS
def test_sine_signal_to_noise_ratio(encode: Codec, decode: Codec) -> None:
    for amplitude in (0.9, 0.1, 0.01):
        data = sine_wave(1000, 8000, 0.5, amplitude)
        x = ints(data).astype(np.float64)
        noise = ints(decode(encode(data))) - x
        snr = 10 * np.log10(np.sum(x**2) / np.sum(noise**2))
        assert snr > 30, (amplitude, snr)  # G.711 holds ~38 dB over a wide range


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: ModuleType = pytest.importorskip("audioop")  # removed in Python 3.13
    return module


def test_matches_audioop_where_it_agrees_with_the_standard() -> None:
    audioop = _audioop()
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)
    # audioop truncates negative mu-law input towards -inf before taking the
    # magnitude; this module quantises the magnitude, so only x >= 0 must agree.
    positive = np.arange(0, 32768, dtype="<i2").tobytes()
    assert ulaw_encode(positive) == audioop.lin2ulaw(positive, 2)


@pytest.mark.parametrize("codec", [ulaw_encode, alaw_encode])
def test_encode_validates_pcm(codec: Codec) -> None:
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        codec(b"abc")
    with pytest.raises(TypeError, match="must be PCM16 audio as bytes, got str"):
        codec("ab")  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", [ulaw_decode, alaw_decode])
def test_decode_validates_type(codec: Codec) -> None:
    assert len(codec(bytearray(3))) == 6
    with pytest.raises(TypeError, match=r"expected G\.711 data as bytes, got list"):
        codec([1, 2])  # type: ignore[arg-type]
