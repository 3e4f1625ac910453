"""Tests for framework.audio.chunk: fixed-size chunking of PCM16 audio."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.audio import Chunker, bytes_per_ms, chunk_bytes, chunk_pcm, silence


def test_chunk_bytes() -> None:
    assert chunk_bytes(16000) == 640
    assert chunk_bytes(16000, 1, 20) == 640
    assert chunk_bytes(48000, 2, 10) == 1920
    assert chunk_bytes(22050, 1, 20) == 882  # 441 samples
    assert chunk_bytes(44100, 2, 15) == 2648  # 661.5 samples round to 662
    assert chunk_bytes(8000, 1, 0.01) == 2  # never less than one sample frame
    assert chunk_bytes(16000, 1, 2.5) == 80


def test_bytes_per_ms() -> None:
    assert bytes_per_ms(16000) == 32.0
    assert bytes_per_ms(44100, 2) == 176.4


def test_silence() -> None:
    assert silence(16000, 10) == bytes(320)
    assert silence(8000, 10, num_channels=2) == bytes(320)


@pytest.mark.parametrize("ms", [0, -20, float("nan"), float("inf")])
def test_bad_durations_are_rejected(ms: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        chunk_bytes(16000, 1, ms)
    with pytest.raises(ValueError, match="chunk_ms must be positive"):
        Chunker(16000, chunk_ms=ms)


def test_bad_rates_are_rejected() -> None:
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        Chunker(0)
    with pytest.raises(TypeError, match="ms must be a number, got str"):
        chunk_bytes(16000, 1, "20")  # type: ignore[arg-type]


def test_chunker_returns_whole_chunks_and_keeps_the_rest() -> None:
    chunker = Chunker(8000, chunk_ms=1)  # 8 samples = 16 bytes
    assert chunker.chunk_size == 16
    assert chunker.push(bytes(range(10))) == []
    assert chunker.pending == 10
    chunks = chunker.push(bytes(range(10, 40)))
    assert chunks == [bytes(range(16)), bytes(range(16, 32))]
    assert chunker.pending == 8
    assert chunker.flush() == bytes(range(32, 40)) + bytes(8)
    assert chunker.pending == 0
    assert chunker.flush() is None


def test_chunker_flush_without_padding() -> None:
    chunker = Chunker(8000, chunk_ms=1)
    chunker.push(b"\x01\x02\x03\x04")
    assert chunker.flush(pad=False) == b"\x01\x02\x03\x04"
    assert chunker.flush(pad=False) is None


def test_chunker_reset_discards_pending() -> None:
    chunker = Chunker(16000, num_channels=2)
    chunker.push(bytes(100))
    chunker.reset()
    assert chunker.pending == 0
    assert chunker.flush() is None
    assert "pending=0" in repr(chunker)
    assert (chunker.sample_rate, chunker.num_channels, chunker.chunk_size) == (16000, 2, 1280)


def test_chunker_accepts_bytearray_and_memoryview() -> None:
    chunker = Chunker(8000, chunk_ms=1)
    assert chunker.push(bytearray(10)) == []
    assert chunker.push(memoryview(bytes(6))) == [bytes(16)]


@pytest.mark.parametrize("bad", ["abcd", 12, None])
def test_chunker_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(TypeError, match="must be PCM16 audio as bytes"):
        Chunker(16000).push(bad)  # type: ignore[arg-type]


@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=40),
    chunk_ms=st.sampled_from([1, 2.5, 10, 20]),
    pad=st.booleans(),
)
def test_chunker_never_loses_or_reorders_bytes(
    data: bytes, cuts: list[int], chunk_ms: float, pad: bool
) -> None:
    chunker = Chunker(8000, num_channels=2, chunk_ms=chunk_ms)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    out: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        out.extend(chunker.push(data[start:end]))
    assert all(len(chunk) == chunker.chunk_size for chunk in out)
    rest = chunker.flush(pad=pad)
    joined = b"".join(out)
    if rest is not None:
        assert 0 < len(rest) <= chunker.chunk_size
        assert len(rest) == chunker.chunk_size or not pad
        joined += rest
    assert joined[: len(data)] == data
    assert not any(joined[len(data) :])  # only padding after the data


def test_chunk_pcm_pads_the_last_chunk() -> None:
    data = bytes(range(1, 41))  # 20 samples; 10 ms at 1 kHz is 10 samples = 20 bytes
    assert list(chunk_pcm(data, 1000, 1, 10)) == [data[:20], data[20:]]
    chunks = list(chunk_pcm(data[:30], 1000, 1, 10))
    assert chunks == [data[:20], data[20:30] + bytes(10)]
    assert list(chunk_pcm(data[:30], 1000, 1, 10, pad=False)) == [data[:20], data[20:30]]
    assert list(chunk_pcm(b"", 1000)) == []


def test_chunk_pcm_checks_arguments_eagerly() -> None:
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        chunk_pcm(b"abc", 16000)
    with pytest.raises(ValueError, match="multiple of 4 bytes, got 6"):
        chunk_pcm(bytes(6), 16000, 2)
    with pytest.raises(TypeError, match="got str"):
        chunk_pcm("abcd", 16000)  # type: ignore[arg-type]


@given(st.binary(max_size=2000).map(lambda b: b[: len(b) // 4 * 4]), st.integers(1, 40))
def test_chunk_pcm_matches_chunker(data: bytes, chunk_ms: int) -> None:
    chunker = Chunker(4000, 2, chunk_ms)
    expected = chunker.push(data)
    rest = chunker.flush()
    if rest is not None:
        expected.append(rest)
    assert list(chunk_pcm(data, 4000, 2, chunk_ms)) == expected
