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


def test_a_flush_sends_the_tail_so_the_frames_hold_all_that_was_appended() -> None:
    buffer = InputAudioBuffer(RATE, origin_ns=0)
    audio = _speech_like(0.73)
    frames = [f for i in range(0, len(audio), APPEND) for f in buffer.append(audio[i : i + APPEND])]
    frames += buffer.flush()
    got = b"".join(f.audio for f in frames)
    assert got == resample(audio, 24000, RATE, quality=LISTENING_QUALITY)
    assert buffer.flush() == []
    assert buffer.now_ns() == round(0.73 * 1e9)


def test_a_clear_drops_the_audio_still_in_conversion_and_keeps_the_clock() -> None:
    """Cleared audio reaches no frame, however little of it the resampler let through."""
    for fmt, rate, width in (("audio/pcmu", 8000, 1), ("audio/pcm", 24000, 2)):
        buffer = InputAudioBuffer(RATE, origin_ns=0, fmt=fmt)
        cleared = buffer.append(bytes([0x7F if fmt == "audio/pcmu" else 0]) * (rate // 20 * width))
        buffer.clear()  # 50 ms appended, then cleared
        after_ms = buffer.clock_ms
        assert after_ms == 50
        tone = (np.sin(np.arange(rate // 5) * 0.3) * 8000).astype("<i2")
        data = tone.tobytes() if width == 2 else bytes(np.full(rate // 5, 0x10, dtype=np.uint8))
        frames = buffer.append(data) + buffer.flush()
        expected = resample(
            data if width == 2 else _ulaw_pcm(data), rate, RATE, quality=LISTENING_QUALITY
        )
        assert b"".join(f.audio for f in frames) == expected, fmt
        assert frames[0].timestamp_ns == round(after_ms * 1e6)
        assert sum(len(f.audio) for f in cleared) < RATE // 20 * 2  # some of the 50 ms was held


def _ulaw_pcm(data: bytes) -> bytes:
    from framework.audio import ulaw_decode

    return ulaw_decode(data)
