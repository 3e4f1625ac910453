"""PCM16 conversions: to and from float samples, channel mixing and interleaving.

PCM16 here always means signed 16-bit little-endian samples, interleaved when
there is more than one channel, the layout of :class:`~framework.frames.audio.AudioFrame`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from framework.audio._checks import BytesLike, as_int16, check_channels, check_pcm16, check_rate

__all__ = [
    "convert_channels",
    "float32_to_pcm16",
    "interleave",
    "pcm16_to_float32",
    "pcm_duration_s",
    "to_mono",
]

_SCALE = 32768.0


def pcm16_to_float32(pcm: BytesLike | npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Convert PCM16 samples to ``float32`` samples in ``[-1.0, 1.0)``.

    ``pcm`` is either PCM16 little-endian bytes (giving a flat array, still
    interleaved) or an ``int16`` numpy array (whose shape is kept). Each sample is
    divided by 32768, so the conversion is exact and :func:`float32_to_pcm16`
    undoes it exactly.
    """
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise TypeError(f"expected an int16 array, got an array of {pcm.dtype}")
        samples: npt.NDArray[np.int16] = pcm
    else:
        samples = as_int16(check_pcm16(pcm))
    out: npt.NDArray[np.float32] = samples.astype(np.float32) / np.float32(_SCALE)
    return out


def float32_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Convert float samples in ``[-1.0, 1.0]`` to PCM16 little-endian bytes.

    Samples are scaled by 32768, rounded to the nearest integer and clipped to
    the int16 range, so out-of-range input saturates instead of wrapping. NaN
    becomes silence. The array is flattened in C order, so pass interleaved
    samples or a ``(frames, channels)`` array.
    """
    if isinstance(samples, str | bytes | bytearray | memoryview):
        raise TypeError(f"expected an array of float samples, got {type(samples).__name__}")
    arr = np.asarray(samples, dtype=np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=-1.0)
    scaled = np.clip(np.rint(arr * _SCALE), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def to_mono(pcm: BytesLike, num_channels: int) -> bytes:
    """Mix interleaved PCM16 audio down to one channel by averaging the channels.

    The average is rounded to the nearest integer. Mono input is returned as is.
    """
    num_channels = check_channels(num_channels)
    data = check_pcm16(pcm, num_channels)
    if num_channels == 1:
        return data
    frames = as_int16(data).reshape(-1, num_channels)
    mixed: npt.NDArray[np.float64] = np.rint(frames.mean(axis=1, dtype=np.float64))
    return mixed.astype("<i2").tobytes()


def convert_channels(pcm: BytesLike, from_channels: int, to_channels: int) -> bytes:
    """Change the channel count of interleaved PCM16 audio.

    Same count returns the audio unchanged; ``to_channels == 1`` averages the
    channels (:func:`to_mono`); mono input is copied to every output channel.
    Other conversions (say 2 to 6 channels) are ambiguous and raise
    :class:`ValueError`.
    """
    from_channels = check_channels(from_channels, "from_channels")
    to_channels = check_channels(to_channels, "to_channels")
    data = check_pcm16(pcm, from_channels)
    if from_channels == to_channels:
        return data
    if to_channels == 1:
        return to_mono(data, from_channels)
    if from_channels == 1:
        copied: npt.NDArray[np.int16] = np.repeat(as_int16(data), to_channels)
        return copied.astype("<i2").tobytes()
    raise ValueError(
        f"cannot convert {from_channels}-channel audio to {to_channels} channels; "
        "only to mono or from mono is supported"
    )


def interleave(left: BytesLike, right: BytesLike) -> bytes:
    """Interleave two mono PCM16 streams into one stereo PCM16 stream.

    The shorter stream is padded with silence to the length of the longer one.
    """
    left_s = as_int16(check_pcm16(left, name="left"))
    right_s = as_int16(check_pcm16(right, name="right"))
    n = max(left_s.size, right_s.size)
    out = np.zeros((n, 2), dtype="<i2")
    out[: left_s.size, 0] = left_s
    out[: right_s.size, 1] = right_s
    return out.tobytes()


def pcm_duration_s(pcm: BytesLike, sample_rate: int, num_channels: int = 1) -> float:
    """Return how many seconds the interleaved PCM16 audio lasts."""
    sample_rate = check_rate(sample_rate)
    num_channels = check_channels(num_channels)
    data = check_pcm16(pcm, num_channels)
    return len(data) / (2 * num_channels * sample_rate)
