"""Fixtures for the STT tests: Piper speech (joe voice) synthesised once per session."""

from __future__ import annotations

import pytest

from tests.speech import synthesize_speech

from .stt_helpers import Utterance

SENTENCES = (
    "what is the weather like today",
    "turn off the lights in the kitchen",
    "how far is the moon from the earth",
    "i would like to order a large pizza with mushrooms",
)


def spoken_sentences(*, deterministic: bool) -> list[Utterance]:
    """The four sentences spoken by Piper as 16 kHz PCM16, its generator noise off if
    ``deterministic`` (the same clips every run)."""
    clips = synthesize_speech(SENTENCES, 16000, deterministic=deterministic)
    return [Utterance(text, pcm) for text, pcm in zip(SENTENCES, clips, strict=True)]


@pytest.fixture(scope="session")
def speech() -> list[Utterance]:
    """Four short spoken sentences (1.6-2.8 s) as 16 kHz PCM16, Piper's generator noise on."""
    return spoken_sentences(deterministic=False)
