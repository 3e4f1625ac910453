"""The VAD measurement of docs/vad.md, run small: the chosen default must hold up on noise."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.speech import Utterance, make_noise, mix_at_snr
from benchmarks.vad.measure import backends, score_noise, score_speech
from processors.vad import SileroVAD, TurnParams, VADParams

pytestmark = pytest.mark.models


def test_noise_generators_hit_their_level() -> None:
    for kind in ("white", "pink", "brown", "pink-4hz"):
        x = make_noise(kind, -30.0, 1.0, 16000, seed=1)
        level = 10 * np.log10(np.mean(x**2))
        assert level == pytest.approx(-30.0, abs=0.01)
    speech = np.zeros(16000)
    speech[4000:8000] = 0.1 * np.sin(np.arange(4000) / 5)
    mixed = mix_at_snr(speech, make_noise("white", -30.0, 1.0, 16000), 10.0)
    noise_power = np.mean((mixed - speech) ** 2)
    speech_power = np.mean(speech[4000:8000] ** 2)
    assert 10 * np.log10(speech_power / noise_power) == pytest.approx(10.0, abs=0.1)


def test_default_backend_makes_no_false_turn_on_noise() -> None:
    assert TurnParams().vad == "silero"
    make, params = backends()["silero"]
    for kind in ("white", "pink-4hz"):
        result = score_noise(make, params, kind, -30.0, seconds=2.0)
        assert result["false_turns"] == 0
        assert result["flagged"] < 0.05


def test_default_backend_finds_speech_under_noise(speech: list[Utterance]) -> None:
    result = score_speech(SileroVAD, VADParams(), speech, snr_db=10.0, kind="pink", gap_s=1.0)
    assert result["hit_rate"] == 1.0
    assert result["false_turns"] == result["merged"] == 0
    assert result["turns"] == len(speech)
    # Decisions come about start_ms / stop_ms after the true times (not asserted tightly).
    assert 0.0 < result["start_latency_ms"] < 600
    assert 0.0 < result["stop_latency_ms"] < 800
