"""A long sentence with mid-sentence pauses, through the offline cascade: nothing of it is lost.

Real models throughout (Silero, Smart Turn, Whisper, SmolLM2, Piper). The user's
sentence is spoken by Piper in one piece and cut at two word boundaries, where
silences of 700 and 900 ms are inserted: the voice stops mid-phrase, the way a
speaker stops to think.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from framework import EndReason, PipelineRunner
from framework.audio import read_wav, resample, write_wav
from pipelines.config import load_pipeline_file
from pipelines.run import build_file_session

pytestmark = [pytest.mark.anyio, pytest.mark.models]
RATE = 16000
CASCADE = Path(__file__).resolve().parents[2] / "pipelines" / "cascade-local.toml"
SENTENCE = "I would like to book a table for four people at eight o'clock on Saturday evening."
CUTS = (("for", 0.7), ("at", 0.9))  # pause after these words, seconds
LEAD_S, TAIL_S = 1.0, 4.0


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def hesitant() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The sentence with its two pauses at 16 kHz, and the spans (s) where the user speaks."""
    from benchmarks.latency.generate import _load_voice
    from benchmarks.turn.corpus import speak

    audio, rate, words = speak(_load_voice(), SENTENCE)
    tokens = SENTENCE.replace(".", "").split()
    assert len(words) == len(tokens)
    bounds = [0]
    for word, _pause in CUTS:
        bounds.append(words[tokens.index(word)][2])
    bounds.append(audio.size)
    pieces = []
    for a, b in itertools.pairwise(bounds):
        pcm = (np.clip(audio[a:b], -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        pieces.append(np.frombuffer(resample(pcm, rate, RATE), dtype="<i2"))
    out = [np.zeros(int(LEAD_S * RATE), dtype=np.int16)]
    spans, t = [], LEAD_S
    for i, piece in enumerate(pieces):
        out.append(piece)
        spans.append((t, t + piece.size / RATE))
        t += piece.size / RATE
        if i < len(CUTS):
            pause = np.zeros(int(CUTS[i][1] * RATE), dtype=np.int16)
            out.append(pause)
            t += pause.size / RATE
    out.append(np.zeros(int(TAIL_S * RATE), dtype=np.int16))
    return np.concatenate(out), spans


async def _converse(tmp_path: Path, audio: np.ndarray, overrides: list[str]):  # type: ignore[no-untyped-def]
    wav = tmp_path / "hesitant.wav"
    write_wav(wav, audio.tobytes(), RATE)
    config = load_pipeline_file(CASCADE, overrides)
    out = tmp_path / "out.wav"
    session, events = build_file_session(config, input_path=wav, output_path=out, stereo=True)
    assert await PipelineRunner(handle_signals=False).run(session.task) is EndReason.ENDED
    return session, events.records, out  # type: ignore[attr-defined]


def _bot_audio_during(out: Path, spans: list[tuple[float, float]]) -> float:
    """Seconds of audible bot audio (right channel) while the user speaks."""
    recorded = read_wav(out)
    bot = np.frombuffer(recorded.pcm, dtype="<i2").reshape(-1, 2)[:, 1]
    rate = recorded.sample_rate
    loud = 0
    for start, end in spans:
        chunk = bot[int(start * rate) : int(end * rate)]
        loud += int(np.count_nonzero(np.abs(chunk) > 500))
    return loud / rate


def _user_messages(session) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["content"] for m in session.context.messages if m["role"] == "user"]


def _missing(heard: str) -> set[str]:
    # Whisper may write numbers as digits or "8 o'clock": compare on the words it cannot miss.
    needed = {"book", "table", "people", "saturday", "evening"}
    return needed - set(_words(heard))


async def test_a_sentence_with_two_pauses_is_one_user_message_and_no_talk_over(
    tmp_path: Path, hesitant: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    audio, spans = hesitant
    session, records, out = await _converse(tmp_path, audio, ["llm.max_tokens=40"])
    turn_events = [
        (r["event"], r.get("extra"))
        for r in records
        if r["event"].startswith("user_") or r.get("name") == "end_of_turn_s"
    ]
    [message] = _user_messages(session)
    assert not _missing(message), message
    assert _words(message)[:3] == ["i", "would", "like"]
    stops = [r for r in records if r["event"] == "user_stopped_speaking"]
    assert len(stops) == 1, f"the pauses ended the turn: {turn_events}"
    assert _bot_audio_during(out, spans) == 0.0, turn_events
    assert [r for r in records if r["event"] == "bot_started_speaking"], "the bot never answered"


async def test_after_false_ends_of_turn_the_resumed_sentence_is_one_user_message(
    tmp_path: Path, hesitant: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    # Ending turns on 300 ms of silence makes each pause a (false) end of turn:
    # the bot starts on each fragment and must yield, and the context must join them.
    audio, _spans = hesitant
    session, records, _out = await _converse(
        tmp_path, audio, ['vad.end_of_turn="silence"', "vad.stop_ms=300", "llm.max_tokens=40"]
    )
    stops = [r for r in records if r["event"] == "user_stopped_speaking"]
    assert len(stops) == 3, "the pauses did not end the turn: nothing to test"
    [message] = _user_messages(session)
    assert not _missing(message), message
    assert _words(message)[:3] == ["i", "would", "like"]
    # The replies to the fragments were withdrawn: at most the final reply remains.
    assert len([m for m in session.context.messages if m["role"] == "assistant"]) <= 1
    assert session.context.messages[0]["role"] == "user"
