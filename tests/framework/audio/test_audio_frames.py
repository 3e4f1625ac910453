"""Tests for framework.audio.frames: the audio-frame helpers, and the package API."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

import framework.audio
from framework.audio import (
    frame_dbfs,
    frame_is_silent,
    frame_peak,
    frame_rms,
    frame_to_mono,
    frame_with_audio,
    frame_with_channels,
    resample,
    resample_frame,
    rms,
    sine_wave,
    to_mono,
)
from framework.frames.audio import AudioFrame, InputAudioFrame, OutputAudioFrame
from framework.frames.text import TextFrame


def make_frame(cls: type[AudioFrame] = InputAudioFrame, num_channels: int = 1) -> AudioFrame:
    audio = sine_wave(440, 16000, 0.02, 0.5, num_channels)
    return cls(audio=audio, sample_rate=16000, num_channels=num_channels)  # type: ignore[call-arg]


def test_level_helpers_read_the_frame_audio() -> None:
    frame = make_frame()
    assert frame_rms(frame) == rms(frame.audio)
    assert frame_peak(frame) == pytest.approx(0.5, rel=0.01)
    assert frame_dbfs(frame) == pytest.approx(-9.03, abs=0.05)
    assert not frame_is_silent(frame)
    silent = OutputAudioFrame(audio=bytes(640), sample_rate=16000)
    assert frame_is_silent(silent)
    assert frame_dbfs(silent) == float("-inf")


@pytest.mark.parametrize("cls", [InputAudioFrame, OutputAudioFrame])
def test_resample_frame_keeps_class_and_timestamp(cls: type[AudioFrame]) -> None:
    frame = make_frame(cls, num_channels=2)
    out = resample_frame(frame, 24000)
    assert type(out) is cls
    assert (out.sample_rate, out.num_channels, out.num_samples) == (24000, 2, 480)
    assert out.audio == resample(frame.audio, 16000, 24000, 2)
    assert out.timestamp_ns == frame.timestamp_ns  # type: ignore[attr-defined]
    assert out.id != frame.id  # type: ignore[attr-defined]
    assert frame.sample_rate == 16000  # the original is untouched


def test_resample_frame_same_rate_returns_the_frame() -> None:
    frame = make_frame()
    assert resample_frame(frame, 16000) is frame


def test_resample_frame_rejects_bad_rate() -> None:
    with pytest.raises(ValueError, match="to_rate must be positive, got 0"):
        resample_frame(make_frame(), 0)


def test_frame_to_mono_and_with_channels() -> None:
    stereo = make_frame(OutputAudioFrame, num_channels=2)
    mono = frame_to_mono(stereo)
    assert isinstance(mono, OutputAudioFrame)
    assert mono.num_channels == 1
    assert mono.audio == to_mono(stereo.audio, 2)
    assert frame_to_mono(mono) is mono
    back = frame_with_channels(mono, 2)
    left, right = np.frombuffer(back.audio, dtype="<i2").reshape(-1, 2).T
    assert np.array_equal(left, right)
    assert frame_with_channels(back, 2) is back


def test_frame_with_audio_copies_other_fields() -> None:
    frame = make_frame()
    out = frame_with_audio(frame, bytes(8), sample_rate=8000)
    assert (out.audio, out.sample_rate, out.num_channels) == (bytes(8), 8000, 1)
    with pytest.raises(ValueError, match="not a whole number"):
        frame_with_audio(frame, bytes(6), num_channels=2)


NOT_FRAMES = [TextFrame(text="hello"), b"\x00\x00", "audio", None]
FRAME_FUNCS: list[Callable[[object], object]] = [
    frame_rms,  # type: ignore[list-item]
    frame_peak,  # type: ignore[list-item]
    frame_dbfs,  # type: ignore[list-item]
    frame_is_silent,  # type: ignore[list-item]
    frame_to_mono,  # type: ignore[list-item]
    lambda f: resample_frame(f, 8000),  # type: ignore[type-var]
    lambda f: frame_with_channels(f, 2),  # type: ignore[type-var]
    lambda f: frame_with_audio(f, b""),  # type: ignore[type-var]
]


@pytest.mark.parametrize("func", FRAME_FUNCS)
@pytest.mark.parametrize("bad", NOT_FRAMES, ids=lambda x: type(x).__name__)
def test_frame_functions_reject_non_audio_frames(
    func: Callable[[object], object], bad: object
) -> None:
    with pytest.raises(TypeError, match=f"^expected an audio frame, got {type(bad).__name__}$"):
        func(bad)


def test_public_api_is_exported() -> None:
    for name in framework.audio.__all__:
        obj = getattr(framework.audio, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_importing_framework_does_not_import_the_audio_package() -> None:
    code = (
        "import sys, framework, framework.frames; "
        "assert 'framework.audio' not in sys.modules; "
        "assert 'numpy' not in sys.modules; assert 'soxr' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
