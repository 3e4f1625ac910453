"""Reading audio files as PCM16 and writing PCM16 WAV files, whole or streamed."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import soundfile as sf

from framework.audio._checks import BytesLike, as_int16, check_channels, check_pcm16, check_rate
from framework.audio.pcm import float32_to_pcm16, to_mono
from framework.audio.resample import resample

__all__ = ["WavAudio", "WavWriter", "is_wav", "read_wav", "write_wav"]

StrPath = str | os.PathLike[str]
log = logging.getLogger("parley")
_WAV_MAGIC = (b"RIFF", b"RIFX", b"RF64")
_UNKNOWN_SIZE = 0xFFFFFFFF  # a data chunk written as a stream, its length never filled in


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Audio read from a file: interleaved PCM16 bytes with their rate and channel count."""

    pcm: bytes = field(repr=False)
    sample_rate: int
    num_channels: int = 1

    def __post_init__(self) -> None:
        check_rate(self.sample_rate)
        pcm = check_pcm16(self.pcm, check_channels(self.num_channels))
        if pcm is not self.pcm:  # a bytearray or memoryview: keep an immutable copy
            object.__setattr__(self, "pcm", pcm)

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return len(self.pcm) // (2 * self.num_channels)

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.num_samples / self.sample_rate


def _error_reason(exc: BaseException) -> str:
    reason = getattr(exc, "error_string", None)
    return str(reason) if reason else str(exc)


def is_wav(path: StrPath) -> bool:
    """True if the file at ``path`` starts with a WAV header (RIFF, RIFX or RF64 WAVE)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[:4] in _WAV_MAGIC and head[8:12] == b"WAVE"


def _wav_shortfall(name: str) -> tuple[float, float] | None:
    """Seconds of audio a RIFF WAV header promises and seconds present, if fewer are.

    None when the file holds all it promises, or is not a RIFF WAV file this can
    check (soundfile then has the last word).
    """
    with open(name, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        frame_bytes, rate, pos = 0, 0, 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            kind, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind == b"fmt ":
                fmt = f.read(16)
                if len(fmt) == 16:
                    rate = int.from_bytes(fmt[4:8], "little")
                    frame_bytes = int.from_bytes(fmt[12:14], "little")
            elif kind == b"data":
                present = size - pos - 8
                if length == _UNKNOWN_SIZE or present >= length or not (rate and frame_bytes):
                    return None
                return length // frame_bytes / rate, present // frame_bytes / rate
            pos += 8 + length + (length & 1)
    return None


def _check_complete(name: str) -> None:
    """Refuse a WAV cut after its header; warn about one cut in the middle of its audio."""
    shortfall = _wav_shortfall(name)
    if shortfall is None:
        return
    promised, present = shortfall
    if present == 0:
        raise ValueError(
            f"{name}: not a readable audio file: its header promises {promised:.3f} s of "
            "audio but the file ends after the header (cut short?)"
        )
    log.warning(
        "%s: cut short: its header promises %.3f s of audio, the file holds %.3f s "
        "(%.3f s missing); reading what is there",
        name,
        promised,
        present,
        promised - present,
    )


def read_wav(path: StrPath, *, sample_rate: int | None = None, mono: bool = False) -> WavAudio:
    """Read an audio file in any format soundfile supports and return it as PCM16.

    Float, 24- and 32-bit files are converted with rounding and clipping.
    ``mono`` averages the channels into one; ``sample_rate`` resamples the
    audio to that rate. Raises :class:`FileNotFoundError` when ``path`` does
    not exist and :class:`ValueError` (``"<path>: not a readable audio file:
    <reason>"``) when it cannot be decoded.

    A WAV file whose header promises more audio than the file holds is refused
    when none of the audio is there, and read with a warning (on the ``parley``
    logger) saying how much is missing when part of it is.
    """
    name = os.fspath(path)
    if sample_rate is not None:
        check_rate(sample_rate)
    if not os.path.exists(name):
        raise FileNotFoundError(errno.ENOENT, "no such audio file", name)
    if os.path.isdir(name):
        raise ValueError(f"{name}: not a readable audio file: it is a directory")
    _check_complete(name)
    try:
        with sf.SoundFile(name) as f:
            rate = int(f.samplerate)
            channels = int(f.channels)
            if f.subtype == "PCM_16":
                samples = f.read(dtype="int16", always_2d=True)
                pcm = np.ascontiguousarray(samples).astype("<i2", copy=False).tobytes()
            else:
                pcm = float32_to_pcm16(f.read(dtype="float32", always_2d=True))
    except (sf.SoundFileError, RuntimeError) as exc:
        raise ValueError(f"{name}: not a readable audio file: {_error_reason(exc)}") from exc
    if mono and channels > 1:
        pcm = to_mono(pcm, channels)
        channels = 1
    if sample_rate is not None and sample_rate != rate:
        pcm = resample(pcm, rate, sample_rate, channels)
        rate = sample_rate
    return WavAudio(pcm=pcm, sample_rate=rate, num_channels=channels)


class WavWriter:
    """Write a PCM16 WAV file piece by piece.

    The file is created when the writer is constructed; the header is finalised
    by :meth:`close`, which the context manager calls for you::

        with WavWriter(path, 16000) as writer:
            writer.write(pcm)
    """

    __slots__ = ("_file", "_frames", "_num_channels", "_path", "_sample_rate")

    def __init__(self, path: StrPath, sample_rate: int, num_channels: int = 1) -> None:
        """Create (or truncate) the WAV file at ``path``."""
        self._path = os.fspath(path)
        self._sample_rate = check_rate(sample_rate)
        self._num_channels = check_channels(num_channels)
        self._frames = 0
        parent = os.path.dirname(os.path.abspath(self._path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent)
        try:
            self._file: sf.SoundFile | None = sf.SoundFile(
                self._path,
                mode="w",
                samplerate=self._sample_rate,
                channels=self._num_channels,
                format="WAV",
                subtype="PCM_16",
            )
        except (sf.SoundFileError, RuntimeError) as exc:
            raise OSError(f"{self._path}: cannot write audio file: {_error_reason(exc)}") from exc

    @property
    def path(self) -> str:
        """Where the file is being written."""
        return self._path

    @property
    def sample_rate(self) -> int:
        """Sample rate of the file in Hz."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels per sample frame."""
        return self._num_channels

    @property
    def num_samples(self) -> int:
        """Samples per channel written so far."""
        return self._frames

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._file is None

    def write(self, pcm: BytesLike) -> None:
        """Append interleaved PCM16 audio to the file."""
        data = check_pcm16(pcm, self._num_channels)
        if self._file is None:
            raise ValueError(f"{self._path}: WavWriter is closed")
        if data:
            self._file.write(as_int16(data).reshape(-1, self._num_channels))
            self._frames += len(data) // (2 * self._num_channels)

    def close(self) -> None:
        """Finish the file; further writes raise :class:`ValueError`. Safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._file is None else "open"
        return f"WavWriter({self._path!r}, {self._sample_rate}, {self._num_channels}, {state})"


def write_wav(path: StrPath, pcm: BytesLike, sample_rate: int, num_channels: int = 1) -> None:
    """Write interleaved PCM16 audio to ``path`` as a 16-bit WAV file."""
    data = check_pcm16(pcm, check_channels(num_channels))
    with WavWriter(path, sample_rate, num_channels) as writer:
        writer.write(data)
