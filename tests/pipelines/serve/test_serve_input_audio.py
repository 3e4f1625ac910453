"""A session's input audio on its way to the pipeline: nothing held back, nothing lost."""

from __future__ import annotations

import numpy as np

from framework.audio import LISTENING_QUALITY, resample
from pipelines.serve.audio import InputAudioBuffer

RATE = 16000
APPEND = 24000 * 20 // 1000 * 2  # 20 ms of 24 kHz PCM16


def _speech_like(seconds: float) -> bytes:
    rng = np.random.default_rng(5)
    return (rng.standard_normal(int(24000 * seconds)) * 3000).astype("<i2").tobytes()


def test_an_append_goes_on_at_once_in_frames_of_up_to_20_ms() -> None:
    buffer = InputAudioBuffer(RATE, origin_ns=1_000_000_000)
    audio = _speech_like(2.0)
    behind_ms, sent = [], 0
    for i in range(0, len(audio), APPEND):
        frames = buffer.append(audio[i : i + APPEND])
        assert all(len(f.audio) // 2 <= RATE // 50 for f in frames)
        sent += sum(len(f.audio) // 2 for f in frames)
        behind_ms.append((i + APPEND) / 48 - sent / RATE * 1000)
    # soxr releases its output in blocks (up to 20 ms late at times); on average only
    # its filter (6 ms at LQ) and a tail under 5 ms wait. Chunks of exactly 20 ms at HQ
    # waited 31 ms on average.
    assert float(np.mean(behind_ms)) < 6.5 + 5
    assert max(behind_ms) <= 25


def test_the_frames_add_up_to_the_resampled_stream_bit_for_bit() -> None:
    buffer = InputAudioBuffer(RATE, origin_ns=0)
    audio = _speech_like(0.73)
    got = b"".join(
        f.audio for i in range(0, len(audio), APPEND) for f in buffer.append(audio[i : i + APPEND])
    )
    whole = resample(audio, 24000, RATE, quality=LISTENING_QUALITY)
    assert whole.startswith(got)
    assert (len(whole) - len(got)) / 2 / RATE <= 0.025  # the filter's tail, flushed at the end


def test_frame_stamps_follow_the_samples_sent() -> None:
    buffer = InputAudioBuffer(RATE, origin_ns=5_000_000_000)
    audio = _speech_like(0.5)
    frames = [f for i in range(0, len(audio), APPEND) for f in buffer.append(audio[i : i + APPEND])]
    sent = 0
    for frame in frames:
        assert frame.timestamp_ns == 5_000_000_000 + round(sent * 1e9 / RATE)
        sent += len(frame.audio) // 2
