"""Cutting PCM16 audio into fixed-duration chunks, in one go or as a stream."""

from __future__ import annotations

import math
from collections.abc import Iterator

from framework.audio._checks import BytesLike, check_channels, check_pcm16, check_rate

__all__ = ["Chunker", "bytes_per_ms", "chunk_bytes", "chunk_pcm", "silence"]


def _check_ms(ms: object, name: str = "ms") -> float:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        raise TypeError(f"{name} must be a number, got {type(ms).__name__}")
    if not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"{name} must be positive, got {ms}")
    return float(ms)


def bytes_per_ms(sample_rate: int, num_channels: int = 1) -> float:
    """Return how many bytes one millisecond of PCM16 audio takes (may be fractional)."""
    sample_rate = check_rate(sample_rate)
    num_channels = check_channels(num_channels)
    return sample_rate * num_channels * 2 / 1000


def chunk_bytes(sample_rate: int, num_channels: int = 1, ms: float = 20) -> int:
    """Return the byte size of ``ms`` milliseconds of PCM16 audio.

    The duration is rounded to the nearest whole sample frame (at least one), so
    the result is always a multiple of ``2 * num_channels``.
    """
    sample_rate = check_rate(sample_rate)
    num_channels = check_channels(num_channels)
    duration = _check_ms(ms)
    frames = max(1, math.floor(sample_rate * duration / 1000 + 0.5))
    return frames * 2 * num_channels


def silence(sample_rate: int, ms: float, num_channels: int = 1) -> bytes:
    """Return ``ms`` milliseconds of PCM16 silence (rounded to whole sample frames)."""
    return bytes(chunk_bytes(sample_rate, num_channels, ms))


class Chunker:
    """Re-frame a stream of PCM16 bytes into chunks of a fixed duration.

    Pieces of any length go in through :meth:`push`, which returns every chunk
    that is now complete; :meth:`flush` returns what is left at the end of the
    stream. Bytes come out in the order they went in and none are dropped.
    Pushed pieces need not end on a sample boundary (network reads often do
    not), so :meth:`push` accepts odd lengths and keeps the partial sample.
    """

    __slots__ = ("_buffer", "_chunk_size", "_num_channels", "_sample_rate")

    def __init__(self, sample_rate: int, num_channels: int = 1, chunk_ms: float = 20) -> None:
        """Create a chunker producing ``chunk_ms`` millisecond chunks."""
        self._sample_rate = check_rate(sample_rate)
        self._num_channels = check_channels(num_channels)
        self._chunk_size = chunk_bytes(sample_rate, num_channels, _check_ms(chunk_ms, "chunk_ms"))
        self._buffer = bytearray()

    @property
    def sample_rate(self) -> int:
        """Sample rate of the audio in Hz."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels per sample frame."""
        return self._num_channels

    @property
    def chunk_size(self) -> int:
        """Size of every chunk in bytes."""
        return self._chunk_size

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a chunk."""
        return len(self._buffer)

    def push(self, pcm: BytesLike) -> list[bytes]:
        """Add ``pcm`` and return the chunks it completes (possibly none)."""
        if not isinstance(pcm, bytes | bytearray | memoryview):
            raise TypeError(f"pcm must be PCM16 audio as bytes, got {type(pcm).__name__}")
        buffer = self._buffer
        buffer += pcm
        size = self._chunk_size
        whole = len(buffer) - len(buffer) % size
        if not whole:
            return []
        view = memoryview(buffer)
        try:
            chunks = [bytes(view[i : i + size]) for i in range(0, whole, size)]
        finally:
            view.release()
        del buffer[:whole]
        return chunks

    def flush(self, pad: bool = True) -> bytes | None:
        """Return the leftover bytes, or ``None`` when nothing is left.

        With ``pad`` the leftover is filled with silence to a whole chunk;
        without it the leftover is returned as it is. Either way the chunker is
        empty afterwards.
        """
        if not self._buffer:
            return None
        rest = bytes(self._buffer)
        self._buffer.clear()
        if pad:
            rest += bytes(self._chunk_size - len(rest))
        return rest

    def reset(self) -> None:
        """Discard any pending bytes."""
        self._buffer.clear()

    def __repr__(self) -> str:
        return (
            f"Chunker(sample_rate={self._sample_rate}, num_channels={self._num_channels}, "
            f"chunk_size={self._chunk_size}, pending={len(self._buffer)})"
        )


def chunk_pcm(
    pcm: BytesLike,
    sample_rate: int,
    num_channels: int = 1,
    chunk_ms: float = 20,
    *,
    pad: bool = True,
) -> Iterator[bytes]:
    """Split interleaved PCM16 audio into ``chunk_ms`` millisecond chunks.

    The last chunk is padded with silence to full size unless ``pad`` is false,
    in which case it may be shorter. Empty audio yields no chunks. Arguments
    are checked at call time, not on first iteration.
    """
    data = check_pcm16(pcm, check_channels(num_channels))
    size = chunk_bytes(sample_rate, num_channels, _check_ms(chunk_ms, "chunk_ms"))
    return _chunks(data, size, pad)


def _chunks(data: bytes, size: int, pad: bool) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        chunk = bytes(view[start : start + size])
        if pad and len(chunk) < size:
            chunk += bytes(size - len(chunk))
        yield chunk
