"""Audio helpers that take and return audio frames instead of raw PCM bytes.

Every function here raises ``TypeError("expected an audio frame, got <type>")``
when handed anything that is not an :class:`~framework.frames.audio.AudioFrame`.
Functions returning a frame build a new frame of the same class with a fresh
``id``, copying every other field (``timestamp_ns`` included, so latency
measured from the original frame stays meaningful).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

from framework.audio._checks import check_audio_frame, check_channels, check_rate
from framework.audio.levels import dbfs, is_silent, peak, rms
from framework.audio.pcm import convert_channels, to_mono
from framework.audio.resample import Quality, resample
from framework.frames.audio import AudioFrame

__all__ = [
    "frame_dbfs",
    "frame_is_silent",
    "frame_peak",
    "frame_rms",
    "frame_to_mono",
    "frame_with_audio",
    "frame_with_channels",
    "resample_frame",
]

F = TypeVar("F", bound=AudioFrame)


def frame_with_audio(
    frame: F,
    audio: bytes,
    *,
    sample_rate: int | None = None,
    num_channels: int | None = None,
) -> F:
    """Return a copy of ``frame`` (same class, fresh ``id``) carrying new audio.

    ``sample_rate`` and ``num_channels`` default to the frame's own.
    """
    check_audio_frame(frame)
    try:
        fields = dataclasses.fields(cast(Any, frame))
    except TypeError:
        raise TypeError(f"cannot copy {type(frame).__name__}: it is not a dataclass") from None
    values: dict[str, Any] = {
        f.name: getattr(frame, f.name) for f in fields if f.init and f.name != "id"
    }
    values["audio"] = audio
    if sample_rate is not None:
        values["sample_rate"] = sample_rate
    if num_channels is not None:
        values["num_channels"] = num_channels
    return type(frame)(**values)


def frame_rms(frame: AudioFrame) -> float:
    """Return the RMS level of the frame's audio in ``[0.0, 1.0]``."""
    return rms(check_audio_frame(frame).audio)


def frame_peak(frame: AudioFrame) -> float:
    """Return the largest absolute sample of the frame's audio in ``[0.0, 1.0]``."""
    return peak(check_audio_frame(frame).audio)


def frame_dbfs(frame: AudioFrame) -> float:
    """Return the RMS level of the frame's audio in dBFS (``-inf`` for silence)."""
    return dbfs(check_audio_frame(frame).audio)


def frame_is_silent(frame: AudioFrame, threshold_dbfs: float = -60.0) -> bool:
    """Return True when the frame's RMS level is below ``threshold_dbfs``."""
    return is_silent(check_audio_frame(frame).audio, threshold_dbfs)


def resample_frame(frame: F, to_rate: int, quality: Quality = "HQ") -> F:
    """Return the frame resampled to ``to_rate`` Hz, as a frame of the same class.

    A frame already at ``to_rate`` is returned as is. This resamples the frame
    on its own; for a stream of frames use a
    :class:`~framework.audio.resample.StreamResampler` to avoid boundary clicks.
    """
    check_audio_frame(frame)
    to_rate = check_rate(to_rate, "to_rate")
    if frame.sample_rate == to_rate:
        return frame
    audio = resample(frame.audio, frame.sample_rate, to_rate, frame.num_channels, quality)
    return frame_with_audio(frame, audio, sample_rate=to_rate)


def frame_to_mono(frame: F) -> F:
    """Return the frame mixed down to one channel (a mono frame is returned as is)."""
    check_audio_frame(frame)
    if frame.num_channels == 1:
        return frame
    return frame_with_audio(frame, to_mono(frame.audio, frame.num_channels), num_channels=1)


def frame_with_channels(frame: F, num_channels: int) -> F:
    """Return the frame converted to ``num_channels`` channels.

    Supports mixing down to mono and copying mono to several channels; a frame
    that already has ``num_channels`` channels is returned as is.
    """
    check_audio_frame(frame)
    num_channels = check_channels(num_channels)
    if frame.num_channels == num_channels:
        return frame
    audio = convert_channels(frame.audio, frame.num_channels, num_channels)
    return frame_with_audio(frame, audio, num_channels=num_channels)
