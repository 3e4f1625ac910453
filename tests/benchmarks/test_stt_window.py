"""The encoder-window benchmark counts passes, retries and changed transcripts (real Whisper)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stt_short_clips import non_speech_clips
from benchmarks.stt_window import Clip, measure
from processors.stt import _whisper_engine as engine

pytestmark = pytest.mark.models


def _noise() -> Clip:
    """Pink noise at -25 dBFS: Whisper doubts it heard speech on a short window."""
    [clip] = [c for c in non_speech_clips() if c.name == "pink -25 dBFS"]
    return Clip(clip.name, "", clip.pcm)


def test_each_window_transcribes_every_clip_and_counts_its_retries() -> None:
    noise = _noise()
    quiet = Clip("silence", "", np.zeros(16000, dtype="<i2").tobytes())
    encode = engine.WhisperModel._encode
    rows = measure([noise, quiet], [8.0, 8.0, 30.0])
    assert [row.window_s for row in rows] == [8.0, 8.0, 30.0]
    assert all(len(row.ms) == 2 for row in rows)
    # the noise looks like non-speech on 8 s and is encoded again on 30 s; digital
    # silence is never encoded
    assert rows[0].retried == rows[1].retried == 1
    assert rows[1].differ == []  # the same window twice: the same texts (greedy decoding)
    assert rows[2].retried == 0  # on the full window there is no larger one to retry on
    assert all(row.hallucinations == [] for row in rows)
    assert engine.WhisperModel._encode is encode  # the counting is undone
