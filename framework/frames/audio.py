"""Audio frames: 16-bit little-endian PCM with its rate and channel count."""

from __future__ import annotations

from dataclasses import dataclass, field

from framework.frames.base import DataFrame, SystemFrame

__all__ = ["AudioFrame", "InputAudioFrame", "OutputAudioFrame"]


class AudioFrame:
    """Behaviour shared by audio frames; ``isinstance(f, AudioFrame)`` finds them all.

    Subclasses declare ``audio`` (interleaved PCM16 little-endian bytes),
    ``sample_rate`` and ``num_channels``.
    """

    __slots__ = ()
    audio: bytes
    sample_rate: int
    num_channels: int

    def _check_audio(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.num_channels <= 0:
            raise ValueError(f"num_channels must be positive, got {self.num_channels}")
        if len(self.audio) % (2 * self.num_channels):
            raise ValueError(
                f"audio holds {len(self.audio)} bytes, not a whole number of "
                f"{self.num_channels}-channel PCM16 samples"
            )

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return len(self.audio) // (2 * self.num_channels)

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.num_samples / self.sample_rate


@dataclass(slots=True, kw_only=True)
class InputAudioFrame(AudioFrame, SystemFrame):
    """Audio heard from the user. A system frame: never stuck behind output work."""

    audio: bytes = field(repr=False)
    sample_rate: int
    num_channels: int = 1

    def __post_init__(self) -> None:
        self._check_audio()


@dataclass(slots=True, kw_only=True)
class OutputAudioFrame(AudioFrame, DataFrame):
    """Audio to play to the user (synthesised speech, realtime model output)."""

    audio: bytes = field(repr=False)
    sample_rate: int
    num_channels: int = 1

    def __post_init__(self) -> None:
        self._check_audio()
