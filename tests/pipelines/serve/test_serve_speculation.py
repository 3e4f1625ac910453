"""semantic_vad and speculation in ``parley serve``, over real WebSockets.

The real Silero VAD, Smart Turn v3.2, Whisper and Piper run behind a server on
127.0.0.1; the language model is the scripted stand-in
(:mod:`tests.pipelines.serve.scripted_llm`, "You said: <user text>."), which
logs every request with its time, so a test can tell a reply prepared during
the user's pause from one started at the end of the turn. Speech is Piper's,
silences are sent in real time (the STT and the model work while they pass).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import websockets

from pipelines.serve.app import running_server
from pipelines.serve.session_config import SemanticVad, ServerVad
from pipelines.serve.turn_settings import EAGERNESS, turn_settings
from processors.vad.turn import TurnParams
from tests.pipelines.serve import scripted_llm
from tests.pipelines.serve.helpers import (
    RawClient,
    connect_session,
    event_types,
    record_smart_turn,
    reply_text,
    say,
    speech_24k,
)

WORD_DELAY_S = 0.05
# A verdict that is late on a loaded machine must not end the turn before it comes.
UNJUDGED_MS = 3900

HEAD = "I would like to book a table for, um,"
TAIL = "four people at eight o'clock."
QUESTION = "What is the capital of France?"

# Events of a turn after its speech_stopped, when the transcript is in by then.
TURN_END = [
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]


# ------------------------------------------------------------------ settings (no models)


def test_eagerness_sets_the_end_of_turn_waits() -> None:
    base = TurnParams(unjudged_stop_ms=800.0)
    waits = {
        e: turn_settings(SemanticVad(type="semantic_vad", eagerness=e), base, speculate=True)
        for e in ("low", "medium", "high", "auto")
    }
    assert [waits[e]["incomplete_stop_ms"] for e in ("low", "medium", "high")] == [
        8000.0,
        4000.0,
        2000.0,
    ]
    assert waits["auto"] == waits["medium"]
    assert (
        waits["high"]["complete_stop_ms"]
        < waits["medium"]["complete_stop_ms"]
        < waits["low"]["complete_stop_ms"]
    )
    assert (
        waits["high"]["end_of_turn_threshold"]
        < waits["medium"]["end_of_turn_threshold"]
        < waits["low"]["end_of_turn_threshold"]
    )
    for eagerness, settings in waits.items():
        assert settings["end_of_turn"] == "smart_turn"
        assert settings["pause_ms"] == base.pause_ms  # the model judges at the pause
        assert settings["complete_stop_ms"] == EAGERNESS[eagerness].complete_stop_ms
        TurnParams.model_validate({**base.model_dump(), **settings})  # a valid combination
        assert not any(k.startswith("hesitation") for k in settings)  # the file's own


def test_server_vad_keeps_its_silence_and_pauses_only_when_speculating() -> None:
    base = TurnParams()
    vad = ServerVad(type="server_vad", silence_duration_ms=400)
    on = turn_settings(vad, base, speculate=True)
    off = turn_settings(vad, base, speculate=False)
    assert on["end_of_turn"] == off["end_of_turn"] == "silence"
    assert on["stop_ms"] == off["stop_ms"] == 400.0
    assert (on["pause_ms"], off["pause_ms"]) == (base.pause_ms, 0.0)
    brief = ServerVad(type="server_vad", silence_duration_ms=50)
    short = turn_settings(brief, base, speculate=True)
    assert short["pause_ms"] == 0.0  # no pause that would come after the end of the turn
    assert turn_settings(None, base, speculate=True)["pause_ms"] == 0.0


# ------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    config = scripted_llm.scripted_cascade(WORD_DELAY_S, f"vad.unjudged_stop_ms={UNJUDGED_MS}")
    async with running_server(config, transcript_timeout_s=20.0) as base:
        yield base


@pytest.fixture
def verdicts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Smart Turn model's verdicts in this test (the real model, recorded)."""
    return record_smart_turn(monkeypatch)


async def _talk(client: RawClient, *pieces: bytes | int) -> list[dict[str, Any]]:
    """Say ``pieces`` while reading the server's events up to ``response.done``.

    Events are read as they come, so their arrival times (``_t``) are accurate.
    """
    events: list[dict[str, Any]] = []

    async def listen() -> None:
        events.extend(await client.until("response.done", limit_s=90))
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listen)
        await say(client, *pieces)
        await anyio.sleep_forever()
    return events


def _user_text(messages: list[dict[str, Any]]) -> str:
    return str(messages[-1]["content"]).lower()


@pytest.mark.anyio
@pytest.mark.models
async def test_semantic_vad_refuses_an_unknown_eagerness(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = RawClient(ws)
        await client.until("session.created", limit_s=120)
        bad = {"type": "semantic_vad", "eagerness": "eager"}
        await client.send(
            type="session.update",
            event_id="bad",
            session={"type": "realtime", "audio": {"input": {"turn_detection": bad}}},
        )
        error = (await client.until("error"))[-1]["error"]
        assert error["param"] == "session.audio.input.turn_detection.eagerness"
        assert error["event_id"] == "bad"
        assert "eager" in error["message"]
        await client.send(type="session.update", session={"type": "realtime"})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


@pytest.mark.anyio
@pytest.mark.models
async def test_a_hesitation_then_more_words_withdraws_the_prepared_reply(
    url: str, verdicts: list[float]
) -> None:
    """The reply prepared at the hesitation never reaches the client; the whole turn is answered."""
    scripted_llm.CALLS.clear()
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "medium"})
        events = await _talk(client, 300, speech_24k(HEAD), 3000, speech_24k(TAIL), 5000)
    kinds = event_types(events)
    stopped_at = events[kinds.index("input_audio_buffer.speech_stopped")]["_t"]

    # Nothing of the withdrawn reply, nor anything else, while the user held the turn.
    assert kinds[0] == "input_audio_buffer.speech_started"
    assert kinds[1:5] == TURN_END[:4]  # speech_stopped, the commit, the item
    # (the whole turn's transcript may come after response.created on a loaded CPU)
    assert kinds.index("response.created") > 4
    assert kinds.count("input_audio_buffer.speech_started") == 1
    assert kinds.count("input_audio_buffer.committed") == 1
    assert kinds.count("response.created") == 1
    # The model judged the hesitation incomplete, so the turn went on through it.
    assert verdicts
    assert min(verdicts) < EAGERNESS["medium"].threshold
    # A reply to the words before the pause was started during it, then withdrawn.
    assert len(scripted_llm.CALLS) >= 2, "no reply was prepared during the pause"
    first_at, first = scripted_llm.CALLS[0]
    assert first_at < stopped_at
    assert "table" in _user_text(first)
    assert "eight" not in _user_text(first)
    # The answer covers the whole turn, and so does its transcript.
    done = events[-1]
    assert done["response"]["status"] == "completed"
    reply = reply_text(done).lower()
    assert "table" in reply
    assert "people" in reply or "eight" in reply
    (transcript,) = [e for e in events if e["type"].endswith("transcription.completed")]
    assert transcript["item_id"] == events[0]["item_id"]
    assert "table" in transcript["transcript"].lower()
    assert "eight" in transcript["transcript"].lower() or "people" in transcript["transcript"]


@pytest.mark.anyio
@pytest.mark.models
async def test_a_reply_prepared_during_the_silence_is_given_when_the_turn_ends(url: str) -> None:
    """server_vad with a long silence (4 s, time for a loaded CPU): one request, before the end."""
    scripted_llm.CALLS.clear()
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "server_vad", "silence_duration_ms": 4000})
        events = await _talk(client, 300, speech_24k(QUESTION), 4500)
    stopped_at = next(e["_t"] for e in events if e["type"].endswith("speech_stopped"))

    kinds = event_types(events)
    assert kinds[0] == "input_audio_buffer.speech_started"
    assert kinds[1 : 1 + len(TURN_END)] == TURN_END
    assert len(scripted_llm.CALLS) == 1
    called_at, messages = scripted_llm.CALLS[0]
    assert called_at < stopped_at, "the reply was not prepared during the silence"
    assert "capital" in _user_text(messages)
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert "capital" in reply_text(events[-1]).lower()
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert deltas
    assert all(e["response_id"] == done["id"] for e in deltas)


@pytest.mark.anyio
@pytest.mark.models
async def test_semantic_vad_answers_a_complete_question(url: str, verdicts: list[float]) -> None:
    scripted_llm.CALLS.clear()
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "high"})
        events = await _talk(client, 300, speech_24k(QUESTION), 2500)
        after: list[dict[str, Any]] = []
        with anyio.move_on_after(0.5):
            after.append(await client.recv())

    assert verdicts, "the Smart Turn model was not asked"
    kinds = event_types(events)
    assert kinds.count("response.created") == 1
    assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
    assert events[-1]["response"]["status"] == "completed"
    assert "capital" in reply_text(events[-1]).lower()
    assert after == []
