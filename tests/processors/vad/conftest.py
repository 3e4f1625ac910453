"""Fixtures for the VAD tests: Piper speech synthesised once per session."""

from __future__ import annotations

import pytest

from tests.speech import SENTENCES, Utterance, synthesize_speech, utterances


@pytest.fixture(scope="session")
def speech() -> list[Utterance]:
    """Two Piper (joe voice) sentences at 16 kHz with their true speech bounds."""
    return utterances(synthesize_speech(SENTENCES[:2]))
