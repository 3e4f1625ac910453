"""A session keeps answering after cancelled responses: barge-ins and turns the VAD splits.

Regression tests for realtime-local going silent for the rest of a session once
one response was cancelled by new speech. The real Silero, Whisper and Piper
run behind a real WebSocket; the language model is the scripted stand-in
(:mod:`tests.pipelines.serve.scripted_llm`), slowed to ``WORD_DELAY_S`` per
word so a reply is still streaming when the barge-in comes. Server VAD runs
with 200 ms of silence, as in the benchmark that found the bug.

The speculating cases make sure the session's turn processor emits speculative
pauses (``UserPausedSpeakingFrame``/``UserResumedSpeakingFrame``), as the server
does by default: the STT then finalises turns at pauses, before the session has
closed them, and the session must still give each committed item exactly one
transcript (a wrong count makes every later response wait for a transcript that
belongs to another item, and the session stops answering). Those cases send
live (real-time) audio, as the benchmark does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import websockets

from pipelines.serve.turns import Turns
from tests.pipelines.serve import scripted_llm
from tests.pipelines.serve.helpers import (
    RawClient,
    connect_session,
    event_types,
    reply_text,
    say,
    speech_24k,
)

pytestmark = [pytest.mark.anyio, pytest.mark.models]

WORD_DELAY_S = 0.06
SILENCE_MS = 200
VAD = {"type": "server_vad", "silence_duration_ms": SILENCE_MS}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with scripted_llm.scripted_server(WORD_DELAY_S) as base:
        yield base


@pytest.fixture(scope="module")
async def url_interrupting() -> AsyncIterator[str]:
    """A server where every speech start interrupts at once (``backchannel_ms=0``; the
    holding of speech over the bot is tests/pipelines/serve/test_serve_over_bot.py's)."""
    async with scripted_llm.scripted_server(WORD_DELAY_S, backchannel_ms=0) as base:
        yield base


def _speculate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make new sessions' turn processors emit pauses after 96 ms of silence."""
    apply = Turns.apply_turn_detection

    def apply_and_speculate(self: Turns) -> bool:
        needs_model = apply(self)
        self.turn.params.pause_ms = 96.0
        return needs_model

    monkeypatch.setattr(Turns, "apply_turn_detection", apply_and_speculate)


def _check_transcripts(events: list[dict[str, Any]]) -> dict[str, str]:
    """Every committed item got exactly one transcript, and nothing failed."""
    committed = [e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed"]
    completed = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    assert sorted(e["item_id"] for e in completed) == sorted(committed)
    assert not [e for e in events if e["type"].endswith("transcription.failed")]
    assert not [e for e in events if e["type"] == "error"]
    return {e["item_id"]: e["transcript"] for e in completed}


async def _until_completed(client: RawClient) -> list[dict[str, Any]]:
    """Events up to a ``response.done`` whose status is ``completed``."""
    out: list[dict[str, Any]] = []
    while True:
        out += await client.until("response.done", limit_s=30)
        if out[-1]["response"]["status"] == "completed":
            return out


async def _quiet(client: RawClient, seconds: float) -> list[dict[str, Any]]:
    """Whatever the server sends in the next ``seconds``."""
    out: list[dict[str, Any]] = []
    with anyio.move_on_after(seconds):
        while True:
            out.append(await client.recv())
    return out


@pytest.mark.parametrize(
    ("silence_ms", "speculate"),
    [(200, False), (400, True)],
    ids=["vad200", "vad400-speculating"],  # the benchmark's setting; today's pipeline files
)
async def test_barge_in_cancels_the_reply_and_later_turns_are_answered(
    url_interrupting: str, silence_ms: int, speculate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = url_interrupting
    if speculate:
        _speculate(monkeypatch)
    first = speech_24k("I would like to book a table for two people tomorrow evening please.")
    second = speech_24k("Can you make that three people?")
    third = speech_24k("Do you have a table near the window?")
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(
            ws, {"type": "server_vad", "silence_duration_ms": silence_ms}
        )
        await say(client, 300, first, silence_ms + 50, live=speculate)
        opening = await client.until("response.output_audio.delta")
        created = [e for e in opening if e["type"] == "response.created"]
        assert len(created) == 1
        cut_id = created[0]["response"]["id"]

        # the user talks over the streaming reply: it is cancelled...
        await say(client, second, silence_ms + 400, live=speculate)
        barge = await client.until("response.done")
        assert "input_audio_buffer.speech_started" in event_types(barge)
        cut = barge[-1]["response"]
        assert cut["id"] == cut_id
        assert cut["status"] == "cancelled"
        assert cut["status_details"]["reason"] == "turn_detected"
        # ...and the barge-in turn gets its own answer,
        answer = await _until_completed(client)
        assert "three" in reply_text(answer[-1]).lower()

        # and so does the next turn.
        await say(client, third, silence_ms + 400, live=speculate)
        later = await _until_completed(client)
        assert "window" in reply_text(later[-1]).lower()

        assert await _quiet(client, 0.5) == []  # no stray response follows
        events = opening + barge + answer + later
        assert len(_check_transcripts(events)) == 3
        done = [e["response"] for e in events if e["type"] == "response.done"]
        assert [r["status"] for r in done].count("completed") == 2


async def test_a_turn_split_by_the_vad_gets_one_response_at_its_end(url: str) -> None:
    head = speech_24k("Tomorrow evening.")
    tail = speech_24k("At seven o'clock near the window.")
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, VAD)
        # one utterance with a 250 ms pause in it: longer than the VAD's silence
        await say(client, 300, head, 250, tail, 600)
        events = await _until_completed(client)
        events += await _quiet(client, 1.0)

        kinds = event_types(events)
        committed = [i for i, k in enumerate(kinds) if k == "input_audio_buffer.committed"]
        assert len(committed) == 2, "the VAD did not split the turn"
        assert kinds.count("input_audio_buffer.speech_started") == 2
        created = [i for i, k in enumerate(kinds) if k == "response.created"]
        done = [events[i]["response"] for i, k in enumerate(kinds) if k == "response.done"]
        assert len(created) == len(done)
        # exactly one response is answered, after the end of the whole utterance
        answered = [r for r in done if r["status"] == "completed"]
        assert len(answered) == 1
        assert created[-1] > committed[-1]
        assert answered[0]["id"] == done[-1]["id"]
        for early in done[:-1]:  # the answer to the first half was cut by the second
            assert early["status"] == "cancelled"
            assert early["status_details"]["reason"] == "turn_detected"
        transcripts = _check_transcripts(events)
        assert "window" in transcripts[events[committed[-1]]["item_id"]].lower()
        assert "window" in reply_text(events[kinds.index("response.done", created[-1])]).lower()


async def test_manual_turns_keep_one_transcript_each_though_the_vad_speculates(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _speculate(monkeypatch)
    head, tail = speech_24k("Tomorrow evening."), speech_24k("Near the window, please.")
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, None)
        for _ in range(2):  # a second turn finds the accounting intact
            await say(client, head, 150, tail, 600)
            await client.send(type="input_audio_buffer.commit")
            await client.send(type="response.create")
            events = await _until_completed(client)
            events += await _quiet(client, 0.3)
            (heard,) = _check_transcripts(events).values()
            assert heard  # (Whisper tiny sometimes drops the words after the pause)
            reply = reply_text(events[event_types(events).index("response.done")])
            assert reply.lower().startswith(f"you said: {heard.lower()}")


async def test_a_turn_that_waited_for_a_response_is_answered_when_it_ends_early(url: str) -> None:
    """Without barge-in, a turn ending during a response is answered after it, however it ends."""
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {**VAD, "interrupt_response": False})
        await client.send(
            type="session.update",
            session={"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 12},
        )
        await client.until("session.updated")
        words = "one two three four five six seven eight nine ten eleven twelve thirteen"
        await client.send(
            type="conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": words}],
            },
        )
        await client.send(type="response.create")
        events = await client.until("response.output_text.delta")
        await say(client, speech_24k("Can you make that three people?"), SILENCE_MS + 200)
        events += await client.until("response.done")
        kinds = event_types(events)
        assert events[-1]["response"]["status_details"]["reason"] == "max_output_tokens"
        assert kinds.index("input_audio_buffer.committed") < len(kinds) - 1  # it waited
        answer = await client.until("response.done", limit_s=20)
        assert [k for k in event_types(answer) if k.startswith("response.created")]
        assert "three" in reply_text(answer[-1]).lower()
