"""Whisper on one- to three-word clips, clean and at 10 dB SNR, and on noise alone.

Both transcription paths: the cascade's WhisperSTT stage and ``parley serve``
over a real WebSocket (see :mod:`benchmarks.stt_short_clips`, which also
defines a repetition hallucination: a word n-gram more than twice, or more than
three times the reference's words). No clip may give one, in the final
transcript or any interim, and noise alone must give no words.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stt_short_clips import (
    LEAD_S,
    RATE,
    TAIL_S,
    TEXTS,
    Clip,
    Heard,
    hallucination,
    make_clips,
    non_speech_clips,
    run_cascade,
    run_serve,
    said_twice,
    tally,
)
from processors.stt._whisper_engine import (
    PassOptions,
    default_model_dir,
    load_model,
    release_model,
)
from processors.stt._whisper_guard import token_budget

pytestmark = [pytest.mark.anyio, pytest.mark.models]


@pytest.fixture(scope="module")
def speech() -> list[Clip]:
    return make_clips(None) + make_clips(10.0)


@pytest.fixture(scope="module")
def noise() -> list[Clip]:
    return non_speech_clips()


def test_the_definition_catches_what_the_server_produced() -> None:
    assert hallucination("Side left.", " ".join(["Side Left"] * 7))
    assert hallucination("Nine.", " ".join(["9"] * 11))
    assert hallucination("Yes.", "Yes, yes. Yes.")
    assert hallucination("Nine.", "nine nine nine nine")  # more than 3x the words
    assert hallucination("", "you")  # words from noise
    assert hallucination("Side left.", "side left") is None
    assert hallucination("Nine.", "9 9") is None  # wrong, but not a loop (counted apart)
    assert hallucination("", "") is None
    assert said_twice("Nine.", "9 9")
    assert said_twice("Side left.", "side left side left")
    assert not said_twice("Bye bye.", "bye bye")
    assert not said_twice("Nine.", "9")


def _check(path: str, runs: list[Heard]) -> None:
    assert len(runs) == 2 * len(TEXTS) + 5
    t = tally(path, runs)
    print(f"\n{path}: {t}")
    bad = [
        (h.clip.name, why)
        for h in runs
        for text in [h.final, *h.interims]
        if (why := hallucination(h.clip.text, text))
    ]
    assert bad == []
    assert t.missing == 0  # every speech clip got a transcript, and every noise clip one too
    assert [h.final for h in runs if not h.clip.text] == [""] * 5
    assert t.said_twice <= 2  # "9 9" for "Nine." was common before the guards: now rare
    assert t.errors / t.words <= 0.3  # tiny.en on one-word answers; printed above


async def test_cascade_stt_short_clips(speech: list[Clip], noise: list[Clip]) -> None:
    _check("cascade", await run_cascade(speech + noise))


async def test_serve_short_clips(speech: list[Clip], noise: list[Clip]) -> None:
    _check("serve", await run_serve(speech, noise))


def _unpadded(clip: Clip) -> bytes:
    return clip.pcm[2 * int(LEAD_S * RATE) : len(clip.pcm) - 2 * int(TAIL_S * RATE)]


def test_a_pass_decodes_no_more_than_its_budget(speech: list[Clip]) -> None:
    samples = np.frombuffer(_unpadded(speech[TEXTS.index("Paris, France.")]), dtype="<i2")
    model = load_model(default_model_dir(), "int8", 2)
    try:
        encoded = model._encode(samples, 8.0)
        decoded = [model._decode(encoded, PassOptions(), budget, 0.0) for budget in (1, 2, 3, 40)]
    finally:
        release_model(model)
    assert [d.tokens for d in decoded[:3]] == [1, 2, 3]
    assert decoded[2].verdict.looping  # it used its whole budget: it did not stop by itself
    assert decoded[3].text.lower().startswith("paris")
    assert decoded[3].tokens < token_budget(len(samples) / RATE)
    assert not decoded[3].verdict.looping


def test_clips_without_silence_around_them(speech: list[Clip]) -> None:
    """The speech alone, no lead or tail: a harder case for the short window."""
    model = load_model(default_model_dir(), "int8", 2)
    try:
        runs = [
            (clip, model.transcribe(_unpadded(clip), PassOptions(guard=guard)))
            for guard in (False, True)
            for clip in speech
        ]
    finally:
        release_model(model)
    bad = {
        guard: [(c.name, t) for c, t in runs[k * len(speech) : (k + 1) * len(speech)]
                if hallucination(c.text, t)]
        for k, guard in enumerate((False, True))
    }  # fmt: skip
    print(f"\nwithout the guard: {bad[False]}")
    assert bad[True] == []
