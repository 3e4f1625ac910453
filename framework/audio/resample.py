"""Sample-rate conversion of PCM16 audio with soxr, one-shot and streaming.

soxr runs on float32 samples here, not int16: its int16 output is dithered
with a time-seeded generator, so the same input would not give the same
output twice. Through float32 both functions are deterministic, and a stream
matches the one-shot result bit for bit.

The conversions to and from float32 stay in float32 and skip the NaN checks of
:func:`~framework.audio.pcm.float32_to_pcm16`: soxr's output from PCM16 input
is always finite, and scaling by 32768 (a power of two) is exact in float32,
so the result is the same, bit for bit, at about a third of the cost (a 20 ms
chunk at 48 kHz: ~12 us instead of ~31 us to convert back).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import soxr

from framework.audio._checks import BytesLike, check_channels, check_pcm16, check_rate
from framework.audio.lowdelay import LowDelayStream

__all__ = ["LISTENING_QUALITY", "Quality", "StreamResampler", "resample"]

Quality = Literal["LD", "QQ", "LQ", "MQ", "HQ", "VHQ"]
"""``LD`` (low delay, :mod:`framework.audio.lowdelay`), then soxr's presets from quick
(``QQ``) to very high (``VHQ``)."""

_QUALITIES: tuple[str, ...] = get_args(Quality)

LISTENING_QUALITY: Quality = "LD"
"""The quality for a live stream that only a VAD and a transcriber listen to.

A streaming resampler holds audio back: fed 20 ms chunks between 16 and 24 kHz,
soxr's ``HQ`` holds 21 ms on average (up to 37 ms), ``LQ`` 11 ms (up to 20 ms),
``LD`` its filter's 1 ms. On a user's speech every held-back millisecond delays
the end of the turn. ``LD``'s 60 dB filter is more than speech recognition needs
(benchmarks/RESULTS.md, "A low-delay resampler for what only machines hear").
Audio a person hears keeps ``HQ``.
"""


def _check_quality(quality: object) -> str:
    if quality not in _QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
    return str(quality)


_SCALE = np.float32(32768.0)
_INV_SCALE = np.float32(1.0 / 32768.0)  # exact: a power of two


def _to_float(pcm: bytes, num_channels: int) -> npt.NDArray[np.float32]:
    """Checked PCM16 bytes as float32 frames in [-1, 1), shaped (frames, channels)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    samples *= _INV_SCALE
    return samples.reshape(-1, num_channels)


def _to_pcm16(resampled: npt.NDArray[np.float32]) -> bytes:
    """soxr's float32 output as PCM16 bytes: scaled, rounded half to even, clipped.

    The same bytes as :func:`~framework.audio.pcm.float32_to_pcm16` for finite
    input (which soxr's output from PCM16 always is), in float32 and in place.
    """
    scaled = np.multiply(resampled, _SCALE, dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return scaled.astype("<i2").tobytes()


def resample(
    pcm: BytesLike,
    from_rate: int,
    to_rate: int,
    num_channels: int = 1,
    quality: Quality = "HQ",
) -> bytes:
    """Resample a whole clip of interleaved PCM16 audio from ``from_rate`` to ``to_rate``.

    Equal rates return the input unchanged without copying. For audio that
    arrives in pieces use :class:`StreamResampler`: resampling each piece on its
    own clicks at the boundaries.
    """
    from_rate = check_rate(from_rate, "from_rate")
    to_rate = check_rate(to_rate, "to_rate")
    num_channels = check_channels(num_channels)
    preset = _check_quality(quality)
    data = check_pcm16(pcm, num_channels)
    if from_rate == to_rate or not data:
        return data
    frames = _to_float(data, num_channels)
    if preset == "LD":
        stream = LowDelayStream(from_rate, to_rate, num_channels)
        return _to_pcm16(stream.resample_chunk(frames, last=True))
    return _to_pcm16(soxr.resample(frames, from_rate, to_rate, quality=preset))


class StreamResampler:
    """Resample a stream of PCM16 chunks with state carried across chunks.

    Feed chunks to :meth:`process` and call :meth:`flush` at the end of the
    stream to get the tail the filter still holds. Concatenating every output
    gives exactly what :func:`resample` returns for the whole stream, however
    it was split. After :meth:`flush` the resampler is ready for a new stream.
    When both rates are equal the audio passes straight through.
    """

    __slots__ = ("_from_rate", "_num_channels", "_quality", "_stream", "_to_rate")

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        num_channels: int = 1,
        quality: Quality = "HQ",
    ) -> None:
        """Create a resampler from ``from_rate`` Hz to ``to_rate`` Hz."""
        self._from_rate = check_rate(from_rate, "from_rate")
        self._to_rate = check_rate(to_rate, "to_rate")
        self._num_channels = check_channels(num_channels)
        self._quality = _check_quality(quality)
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream | LowDelayStream | None:
        if self._from_rate == self._to_rate:
            return None
        if self._quality == "LD":
            return LowDelayStream(self._from_rate, self._to_rate, self._num_channels)
        return soxr.ResampleStream(
            self._from_rate,
            self._to_rate,
            self._num_channels,
            dtype="float32",
            quality=self._quality,
        )

    @property
    def from_rate(self) -> int:
        """Input sample rate in Hz."""
        return self._from_rate

    @property
    def to_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._to_rate

    @property
    def num_channels(self) -> int:
        """Channels per sample frame, in and out."""
        return self._num_channels

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and audio is returned untouched."""
        return self._stream is None

    def process(self, pcm: BytesLike) -> bytes:
        """Resample the next chunk; the output may be shorter while the filter fills."""
        data = check_pcm16(pcm, self._num_channels)
        if self._stream is None or not data:
            return data
        frames = _to_float(data, self._num_channels)
        return _to_pcm16(self._stream.resample_chunk(frames))

    def flush(self) -> bytes:
        """End the stream: return the buffered tail and reset for a new stream."""
        if self._stream is None:
            return b""
        empty = np.zeros((0, self._num_channels), dtype=np.float32)
        tail = _to_pcm16(self._stream.resample_chunk(empty, last=True))
        self._stream.clear()
        return tail

    def reset(self) -> None:
        """Drop any buffered audio and start a new stream (after an interruption)."""
        if self._stream is not None:
            self._stream.clear()

    def __repr__(self) -> str:
        return (
            f"StreamResampler({self._from_rate}, {self._to_rate}, "
            f"num_channels={self._num_channels}, quality={self._quality!r})"
        )
