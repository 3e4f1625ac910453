"""Speech over the bot in ``parley serve``: backchannels and coughs let the reply play on,
words interrupt it (pipelines/serve/over_bot.py), over a real WebSocket, with the
shipped cascade (a scripted model at the language-model boundary, so replies last)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import websockets

from pipelines.serve.over_bot import Playback, is_barge_in, over_bot_rules
from processors.interruption import InterruptionParams
from tests.pipelines.serve import scripted_llm
from tests.pipelines.serve.helpers import (
    RawClient,
    connect_session,
    event_types,
    reply_text,
    say,
    speech_24k,
)

pytestmark = pytest.mark.anyio

WORD_DELAY_S = 0.2  # the reply is still being generated while the user speaks over it
VAD = {"type": "server_vad", "silence_duration_ms": 200}
# The Smart Turn model at each pause, with the words' check; a turn it judges incomplete
# ends after 2 s of silence at most ("high").
SEMANTIC = {"type": "semantic_vad", "eagerness": "high"}
QUESTION = "What is the capital city of France?"  # no pause inside for a VAD to take
LONG_QUESTION = "I would like to book a table for two people tomorrow evening please."


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    async with scripted_llm.scripted_server(WORD_DELAY_S) as base:
        yield base


async def _events_for(client: RawClient, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with anyio.move_on_after(seconds):
        while True:
            out.append(await client.recv())
    return out


async def _reply_playing(client: RawClient, question: str = QUESTION) -> list[dict[str, Any]]:
    """Ask ``question`` and return once the reply's audio has begun."""
    await say(client, 300, speech_24k(question), 250)
    return await client.until("response.output_audio.delta", limit_s=30)


@pytest.mark.models
@pytest.mark.parametrize(
    ("said", "detection"),
    [("Okay.", VAD), ("Uh-huh.", VAD), ("Okay.", SEMANTIC), ("Yeah.", SEMANTIC)],
    ids=["okay-server_vad", "uh-huh-server_vad", "okay-semantic_vad", "yeah-semantic_vad"],
)
async def test_a_backchannel_over_the_bot_lets_the_reply_play_on(
    url: str, said: str, detection: dict[str, Any]
) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, detection)
        await _reply_playing(client)
        await anyio.sleep(0.3)  # the listener hears a little of it first
        # Smart Turn's verdict on a bare word is a coin toss (0.2-0.5 for this "Okay.",
        # moved by the resampling and the silence after it), so under semantic_vad the
        # remark is followed by silence enough for a turn judged incomplete to end too.
        silence_ms = 700 if detection is VAD else 2300
        await say(client, speech_24k(said), silence_ms, live=True)
        during = await client.until("response.done", limit_s=30)
        kinds = event_types(during)
        assert "input_audio_buffer.speech_started" not in kinds
        assert "input_audio_buffer.committed" not in kinds
        assert during[-1]["response"]["status"] == "completed"
        assert "france" in reply_text(during[-1]).lower()  # the whole reply was given
        # No turn, no new reply.
        assert event_types(await _events_for(client, 1.0)) == []

        # The next turn is answered, and the backchannel's audio is not part of it.
        await say(client, speech_24k("Do you have a table near the window?"), 600, live=True)
        later = await client.until("response.done", limit_s=30)
        (transcript,) = [
            e["transcript"]
            for e in later
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]
        assert "window" in transcript.lower()
        assert said.lower().strip(".") not in transcript.lower()
        assert later[-1]["response"]["status"] == "completed"
        assert "error" not in event_types(during + later)


@pytest.mark.models
async def test_a_word_over_the_bot_interrupts_it_from_where_the_speech_began(url: str) -> None:
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, VAD)
        opening = await _reply_playing(client, LONG_QUESTION)  # still generated at the cut
        (created,) = [e for e in opening if e["type"] == "response.created"]
        await anyio.sleep(0.3)
        await say(client, speech_24k("Stop."), 700, live=True)
        barge = await client.until("input_audio_buffer.committed", limit_s=30)
        kinds = event_types(barge)
        started = barge[kinds.index("input_audio_buffer.speech_started")]
        stopped = barge[kinds.index("input_audio_buffer.speech_stopped")]
        # The turn keeps its real start (announced once its words were known).
        assert 0 < stopped["audio_end_ms"] - started["audio_start_ms"] < 1500
        assert started["item_id"] == stopped["item_id"] == barge[-1]["item_id"]
        events = list(barge)
        while [e["type"] for e in events].count("response.done") < 2:  # the cut, the answer
            events += await client.until("response.done", limit_s=30)
        cut, answer = [e for e in events if e["type"] == "response.done"]
        assert cut["response"]["id"] == created["response"]["id"]
        assert cut["response"]["status"] == "cancelled"
        assert cut["response"]["status_details"]["reason"] == "turn_detected"
        assert "stop" in reply_text(answer).lower()


@pytest.mark.models
async def test_long_speech_over_the_bot_interrupts_before_it_ends(url: str) -> None:
    """Speech longer than ``backchannel_ms`` is a barge-in while the user still talks."""
    speech = speech_24k("Can you make that three people at seven near the window please?")
    async with websockets.connect(f"{url}/realtime") as ws:
        client = await connect_session(ws, VAD)
        await _reply_playing(client, LONG_QUESTION)
        sent = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(say, client, speech, 700, True)
            barge = await client.until("input_audio_buffer.speech_started", limit_s=30)
            announced = time.monotonic() - sent
        assert announced < len(speech) / 48000 - 0.5, announced  # well before its end
        rest = await client.until("response.done", limit_s=30)
        assert rest[-1]["response"]["status"] == "cancelled"
        answer = await client.until("response.done", limit_s=30)
        assert "three" in reply_text(answer[-1]).lower()
        assert "input_audio_buffer.speech_started" in event_types(barge)


def test_what_counts_as_a_barge_in() -> None:
    rules = InterruptionParams()
    for text in ("Okay.", "Uh-huh.", "Yeah, okay.", "Hmm", "", "I see."):
        assert not is_barge_in(text, rules), text
    for text in ("Stop.", "Wait, what?", "Okay, stop."):
        assert is_barge_in(text, rules), text
    assert not is_barge_in("Stop.", rules.model_copy(update={"min_words": 2}))


def test_the_hold_is_the_files_words_rule_cut_to_backchannel_ms() -> None:
    words = InterruptionParams(rule="words", max_pause_ms=1500)
    held = over_bot_rules(words, 600)
    assert held is not None and held.max_pause_ms == 600 and held.backchannels
    assert over_bot_rules(words, 0) is None
    assert over_bot_rules(InterruptionParams(rule="speech"), 600) is None
    short = over_bot_rules(words.model_copy(update={"max_pause_ms": 400}), 600)
    assert short is not None and short.max_pause_ms == 400


def test_playback_runs_in_real_time_from_the_first_delta() -> None:
    now = [1_000_000_000]
    playback = Playback(clock=lambda: now[0])
    assert not playback.playing()
    playback.sent(100)
    playback.sent(100)  # sent at once: played one after the other
    assert playback.until_ns == now[0] + 200_000_000
    now[0] += 150_000_000
    assert playback.playing()
    now[0] += 100_000_000
    assert not playback.playing()
    playback.sent(100)  # after a gap: from now
    assert playback.until_ns == now[0] + 100_000_000
    # Speech that began before this stretch did is not speech over a playing bot.
    assert playback.playing_since(now[0]) and not playback.playing_since(now[0] - 1)
    playback.stop()
    assert not playback.playing() and not playback.playing_since(now[0])


def _rule_at(now_s: float, *, played_from_s: float, last_words_end_s: float | None) -> bool:
    """``Turns._over_bot_at`` for speech starting at ``now_s`` (audio and wall clock
    agree): a reply playing from ``played_from_s`` for 5 s, the user's last words ending
    at ``last_words_end_s``."""
    from types import SimpleNamespace

    from framework.frames import UserStartedSpeakingFrame
    from pipelines.serve.turns import Turns

    s = 1_000_000_000
    clock = [int(played_from_s * s)]
    playback = Playback(clock=lambda: clock[0])
    playback.sent(5000)
    clock[0] = int(now_s * s)
    turns = Turns.__new__(Turns)
    turns.state = SimpleNamespace(  # type: ignore[assignment]
        input=SimpleNamespace(now_ns=lambda: clock[0]),
        playback=playback,
        response=None,
        vad_end_ns=None if last_words_end_s is None else int(last_words_end_s * s),
    )
    return turns._over_bot_at(UserStartedSpeakingFrame(speech_start_ns=clock[0]))


def test_speech_over_a_playing_reply_is_held_unless_the_user_is_going_on() -> None:
    # the bot has played 1.5 s; the user's last words ended 3 s ago: a remark over it
    assert _rule_at(10.0, played_from_s=8.5, last_words_end_s=7.0)
    # ... their last words ended 0.6 s ago (a pause taken for the end of the turn)
    assert not _rule_at(10.0, played_from_s=9.7, last_words_end_s=9.4)
    # the reply began after the speech did (more than the onset's grace)
    assert not _rule_at(10.0, played_from_s=10.2, last_words_end_s=5.0)
    # ... or within the grace: the client's onset detector heard a bot playing
    assert _rule_at(10.0, played_from_s=10.05, last_words_end_s=5.0)
    # no words before at all
    assert _rule_at(10.0, played_from_s=9.0, last_words_end_s=None)
