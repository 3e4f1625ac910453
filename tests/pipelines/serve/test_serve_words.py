"""The words' second opinion on the end of a turn in ``parley serve`` (semantic_vad only).

Real models behind a server on 127.0.0.1 (Silero, Smart Turn v3.2, Whisper,
SmolLM2, Piper), over a real WebSocket. The hesitation's first piece ends with a
finished sentence's falling pitch although its words are unfinished ("For the
camping trip I am packing"): Smart Turn often calls the pause complete (the
test checks that it did), so only the words can keep the turn open. The pause is longer than
``transcript_wait_ms``, so the turn stays open only if the words' verdict came
and said "unfinished".
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
import websockets

from pipelines.serve.app import running_server
from pipelines.serve.speculation import Speculation, Speculator
from processors.vad.eou import TranscriptEndOfTurn
from tests.pipelines.serve.helpers import (
    connect_session,
    event_types,
    record_smart_turn,
    say,
    speech_24k,
)

pytestmark = [pytest.mark.anyio, pytest.mark.models]

HESITATIONS = (
    ("For the camping trip I am packing", "two sleeping bags and a small stove."),
    ("I would like to book a table for", "two people at eight o'clock tonight."),
)
QUESTION = "What is the capital city of France?"
THRESHOLD = 1e-7  # pipelines/cascade-local.toml's transcript_threshold
WORDS_WAIT_MS = 2500  # generous: the words' verdict must come within it on a loaded CPU
PAUSE_MS = 3000  # longer than WORDS_WAIT_MS, shorter than WORDS_INCOMPLETE_MS
WORDS_INCOMPLETE_MS = 4000  # the wait unfinished words ask for
INCOMPLETE_S = 4.0


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    overrides = [
        "llm.max_tokens=20",
        f"vad.transcript_wait_ms={WORDS_WAIT_MS}",
        f"vad.transcript_incomplete_stop_ms={WORDS_INCOMPLETE_MS}",
    ]
    async with running_server("cascade-local", overrides=overrides) as base:
        yield base


@pytest.fixture
def words(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float | None]]:
    """The words' verdicts in this test (the real model, recorded)."""
    seen: list[tuple[str, float | None]] = []
    probability = TranscriptEndOfTurn.probability

    def recording(
        self: TranscriptEndOfTurn,
        text: str,
        history: Sequence[Any] = (),
        stop: threading.Event | None = None,
    ) -> float | None:
        value = probability(self, text, history, stop)
        seen.append((text, value))
        return value

    monkeypatch.setattr(TranscriptEndOfTurn, "probability", recording)
    return seen


def _speech(text: str) -> bytes:
    """``text`` in the turn benchmark's voice (the cascade's test of the words uses it)."""
    from framework.audio import resample
    from tests.pipelines.test_transcript_end_of_turn import _piece

    return resample(_piece(text).tobytes(), 16000, 24000)


@pytest.fixture
def voice(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Smart Turn's verdicts in this test (the real model, recorded)."""
    return record_smart_turn(monkeypatch)


async def _talk(client: Any, *pieces: bytes | int) -> tuple[list[dict[str, Any]], float]:
    """Say ``pieces`` and read events up to ``response.done``; also when speech was sent."""
    events: list[dict[str, Any]] = []
    sent: list[float] = []

    async def listen() -> None:
        events.extend(await client.until("response.done", limit_s=120))
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listen)
        for piece in pieces:
            await say(client, piece)
            if isinstance(piece, bytes):
                sent.append(time.monotonic())
        await anyio.sleep_forever()
    return events, sent[-1]


async def test_a_hesitation_smart_turn_calls_complete_stays_one_turn(
    url: str, words: list[tuple[str, float | None]], voice: list[float]
) -> None:
    # The server's own verdict at the pause varies with the synthesised speech and
    # where the pause is cut; only a pause it calls complete tests the words, so each
    # hesitation is said up to 3 times, the speech a little later in the stream each time.
    for (first, rest), shift_ms in itertools.product(HESITATIONS, (0, 20, 40)):
        head = _speech(first)
        voice.clear()
        words.clear()
        async with websockets.connect(f"{url}/realtime") as ws:
            client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "medium"})
            lead = 300 + shift_ms
            events, tail_sent = await _talk(client, lead, head, PAUSE_MS, _speech(rest), 5000)
        if voice and voice[0] >= 0.5:
            break
    else:
        pytest.fail(f"Smart Turn never called a pause complete ({voice}): no test")
    kinds = event_types(events)
    assert kinds.count("input_audio_buffer.speech_started") == 1, kinds
    assert kinds.count("input_audio_buffer.committed") == 1, kinds
    assert kinds.count("response.created") == 1, kinds
    # The first (and only) turn committed holds both pieces: the pause did not end it.
    (transcript,) = [e for e in events if e["type"].endswith("transcription.completed")]
    said = transcript["transcript"].lower()
    assert first.split()[-1].lower() in said, said
    assert rest.split()[0] in said or "2" in said, said
    assert events[kinds.index("input_audio_buffer.speech_stopped")]["_t"] > tail_sent
    # The words of the pause were judged unfinished.
    last, next_word = first.split()[-1].lower(), rest.split()[-2]
    judged = [p for text, p in words if last in text.lower() and next_word not in text.lower()]
    assert judged and judged[0] is not None and judged[0] < THRESHOLD, words


async def test_a_finished_question_still_ends_promptly(
    url: str, words: list[tuple[str, float | None]]
) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "medium"})
        events, spoken_at = await _talk(client, 300, speech_24k(QUESTION), 6000)
    kinds = event_types(events)
    assert kinds.count("input_audio_buffer.committed") == 1, kinds
    assert any(p is not None and p >= THRESHOLD for _text, p in words), words
    # The speech was sent at once (not in real time): its end is when the last byte went.
    stopped = events[kinds.index("input_audio_buffer.speech_stopped")]["_t"]
    assert stopped - spoken_at < INCOMPLETE_S, (stopped - spoken_at, words)


async def test_server_vad_pauses_are_not_judged_by_the_words(
    url: str, words: list[tuple[str, float | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under server_vad silence alone ends the turn: the words' verdict would change
    # nothing, so the pause's transcript goes to the reply without the model's check.
    pauses: list[str] = []
    transcribed = Speculator.on_speculative_transcript

    async def recording(self: Speculator, spec: Speculation, text: str) -> None:
        pauses.append(text)
        await transcribed(self, spec, text)

    monkeypatch.setattr(Speculator, "on_speculative_transcript", recording)
    owners: list[object] = []  # whom each prefill at the speech's start was for
    prefill = TranscriptEndOfTurn.prefill

    def recording_prefill(
        self: TranscriptEndOfTurn, history: Any = (), text: str = "", *, owner: object = None
    ) -> int:
        owners.append(owner)
        return prefill(self, history, text, owner=owner)

    monkeypatch.setattr(TranscriptEndOfTurn, "prefill", recording_prefill)
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "server_vad", "silence_duration_ms": 800})
        events, _ = await _talk(client, 300, speech_24k(QUESTION), 3000)
    # the reply's context is prefilled; the check's own is not, as no check will come
    assert owners and None not in owners, owners
    kinds = event_types(events)
    assert kinds.count("input_audio_buffer.committed") == 1, kinds
    assert kinds.count("response.created") == 1, kinds
    # a pause of the question was transcribed (Whisper has heard "France" as "friends"
    # in a pause cut just after the word)
    assert any("capital" in text.lower() for text in pauses), pauses
    assert words == [], words


@pytest.mark.parametrize("room", [2, 1], ids=["beside", "after"])
async def test_the_reply_starts_beside_the_words_check_when_the_model_has_room(
    url: str,
    words: list[tuple[str, float | None]],
    monkeypatch: pytest.MonkeyPatch,
    room: int,
) -> None:
    # With a context free for each, the reply prepared at the pause is under way before
    # the words are judged; with one, the words come first, then the reply.
    started: list[bool] = []
    judge = Speculator._judge_words

    async def recording(self: Speculator, spec: Speculation, text: str, history: Any) -> None:
        started.append(spec.reply is not None)
        await judge(self, spec, text, history)

    monkeypatch.setattr(Speculator, "_judge_words", recording)
    if room == 1:  # another session's reply holds the other context
        monkeypatch.setattr(TranscriptEndOfTurn, "room", lambda self: 1)
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, {"type": "semantic_vad", "eagerness": "medium"})
        events, _ = await _talk(client, 300, speech_24k(QUESTION), 6000)
    kinds = event_types(events)
    assert kinds.count("input_audio_buffer.committed") == 1, kinds
    assert kinds.count("response.created") == 1, kinds
    assert "response.output_audio.delta" in kinds, kinds
    assert started and started[-1] is (room == 2), started
    assert any(p is not None and p >= THRESHOLD for _text, p in words), words
