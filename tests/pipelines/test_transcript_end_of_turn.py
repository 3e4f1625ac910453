"""The words' second opinion on the end of a turn, through the offline cascade.

Real models throughout (Silero, Smart Turn, Whisper, SmolLM2, Piper). Each
hesitation is two pieces Piper spoke separately, joined by a silence: the first
piece ends with a finished sentence's falling pitch although its words are
unfinished ("For the camping trip I am packing"), so Smart Turn judges the pause
complete (checked first: 0.85-0.91 on these pieces). Only the words can tell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framework.audio import read_wav, resample
from pipelines.config import load_pipeline_file
from processors.vad.smart_turn import shared_model
from tests.pipelines.test_split_turn import _converse

pytestmark = [pytest.mark.anyio, pytest.mark.models]
RATE = 16000
CASCADE = Path(__file__).resolve().parents[2] / "pipelines" / "cascade-local.toml"
HESITATIONS = (
    ("For the camping trip I am packing", "two sleeping bags and a small stove."),
    ("I would like to book a table for", "two people at eight o'clock tonight."),
)
PAUSE_S, LEAD_S, TAIL_S = 0.9, 1.0, 4.0


def _piece(text: str) -> np.ndarray:
    from benchmarks.latency.generate import _load_voice
    from benchmarks.turn.corpus import speak

    audio, rate, _words = speak(_load_voice(), text)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return np.frombuffer(resample(pcm, rate, RATE), dtype="<i2")


def _join(*pieces: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The pieces with PAUSE_S between them; and the spans (s) where the user speaks."""
    out = [np.zeros(int(LEAD_S * RATE), dtype=np.int16)]
    spans, t = [], LEAD_S
    for i, piece in enumerate(pieces):
        if i:
            out.append(np.zeros(int(PAUSE_S * RATE), dtype=np.int16))
            t += PAUSE_S
        out.append(piece)
        spans.append((t, t + piece.size / RATE))
        t += piece.size / RATE
    out.append(np.zeros(int(TAIL_S * RATE), dtype=np.int16))
    return np.concatenate(out), spans


def _sounds_complete(piece: np.ndarray) -> float:
    model = shared_model()
    model.load()
    pause = np.zeros(1536, dtype=np.float32)  # what the model hears at the pause
    return model.predict(np.concatenate([piece.astype(np.float32) / 32768.0, pause]))


def _bot_audio_during(out: Path, spans: list[tuple[float, float]]) -> float:
    """Seconds of audible bot audio (right channel) from the first speech to the last."""
    recorded = read_wav(out)
    bot = np.frombuffer(recorded.pcm, dtype="<i2").reshape(-1, 2)[:, 1]
    rate = recorded.sample_rate
    chunk = bot[int(spans[0][0] * rate) : int(spans[-1][1] * rate)]
    return int(np.count_nonzero(np.abs(chunk) > 500)) / rate


def _waits(records: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [r.get("extra") or {} for r in records if r.get("name") == "end_of_turn_s"]


def _stops(records: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in records if r["event"] == "user_stopped_speaking"]


@pytest.mark.parametrize(("first", "rest"), HESITATIONS)
async def test_a_pause_after_unfinished_words_does_not_end_the_turn(
    tmp_path: Path, first: str, rest: str
) -> None:
    head = _piece(first)
    assert _sounds_complete(head) >= 0.5, "Smart Turn alone would hold this pause: no test"
    audio, spans = _join(head, _piece(rest))
    session, records, out = await _converse(tmp_path, audio, ["llm.max_tokens=30"])
    assert len(_stops(records)) == 1, f"the pause ended the turn: {_waits(records)}"
    assert _bot_audio_during(out, spans) == 0.0
    [message] = [m["content"] for m in session.context.messages if m["role"] == "user"]
    assert "two" in message.lower() or "2" in message, message
    assert [r for r in records if r["event"] == "bot_started_speaking"], "the bot never answered"


async def test_without_the_words_the_same_pause_ends_the_turn(tmp_path: Path) -> None:
    # The control: Smart Turn alone takes the first hesitation's pause for an end.
    audio, _spans = _join(_piece(HESITATIONS[0][0]), _piece(HESITATIONS[0][1]))
    _session, records, _out = await _converse(
        tmp_path, audio, ["llm.max_tokens=30", "vad.transcript_check=false"]
    )
    assert len(_stops(records)) == 2, _waits(records)


async def test_a_finished_question_ends_promptly(tmp_path: Path) -> None:
    audio, _spans = _join(_piece("What is the capital city of France?"))
    _session, records, _out = await _converse(tmp_path, audio, ["llm.max_tokens=30"])
    assert len(_stops(records)) == 1
    [wait] = _waits(records)
    threshold = load_pipeline_file(CASCADE).stage("vad").params["transcript_threshold"]
    assert wait["end_of_turn_probability"] >= 0.5
    # Not the 1.5 s incomplete wait: the words, when judged in time (on a CPU too busy
    # for that the 1.2 s transcript_wait_ms ends it), were judged finished.
    assert wait["audio_wait_s"] < 1.5, wait
    assert wait.get("end_of_turn_words_probability", 1.0) >= threshold, wait
