"""Argument checks shared by the audio helpers (private to the package)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from framework.frames.audio import AudioFrame

__all__ = [
    "BytesLike",
    "as_int16",
    "check_audio_frame",
    "check_channels",
    "check_pcm16",
    "check_positive_int",
    "check_rate",
]


BytesLike = bytes | bytearray | memoryview
"""What the byte-taking functions accept; they always return ``bytes``."""


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int``.

    Raises :class:`TypeError` for a non-integer (``bool`` included) and
    :class:`ValueError` naming the value when it is zero or negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def check_rate(value: object, name: str = "sample_rate") -> int:
    """Return ``value`` if it is a valid sample rate in Hz (a positive ``int``)."""
    return check_positive_int(name, value)


def check_channels(value: object, name: str = "num_channels") -> int:
    """Return ``value`` if it is a valid channel count (a positive ``int``)."""
    return check_positive_int(name, value)


def check_pcm16(pcm: object, num_channels: int = 1, name: str = "pcm") -> bytes:
    """Return ``pcm`` as ``bytes`` after checking it holds whole PCM16 samples.

    ``bytes``, ``bytearray`` and ``memoryview`` are accepted; anything else
    (a ``str``, an audio frame, a numpy array...) raises :class:`TypeError`.
    An odd byte count, or one that does not split into whole
    ``num_channels``-channel sample frames, raises :class:`ValueError`.
    """
    if isinstance(pcm, bytes):
        data = pcm
    elif isinstance(pcm, bytearray | memoryview):
        data = bytes(pcm)  # a memoryview of any format is read as its raw bytes
    else:
        hint = " (pass frame.audio)" if isinstance(pcm, AudioFrame) else ""
        raise TypeError(f"{name} must be PCM16 audio as bytes, got {type(pcm).__name__}{hint}")
    if len(data) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    if num_channels > 1 and len(data) % (2 * num_channels):
        raise ValueError(
            f"{num_channels}-channel PCM16 audio must have a multiple of "
            f"{2 * num_channels} bytes, got {len(data)}"
        )
    return data


def as_int16(pcm: bytes) -> npt.NDArray[np.int16]:
    """View checked PCM16 little-endian bytes as a flat native ``int16`` array.

    The array shares memory with ``pcm`` where possible and is read-only.
    """
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)


def check_audio_frame(frame: object) -> AudioFrame:
    """Return ``frame`` if it is an audio frame, else raise :class:`TypeError`."""
    if not isinstance(frame, AudioFrame):
        raise TypeError(f"expected an audio frame, got {type(frame).__name__}")
    return frame
