"""Barge-in rules on the offline pipelines, real models throughout.

The user asks for a story (Piper speech); while the bot tells it (SmolLM2, Piper),
the user says something over it: a backchannel, a throat-clearing sound, a
barge-in that opens with a short word, or too few words for ``min_words``. The
scenario transport of the benchmark places that speech relative to the bot's
first audio, to the sample, so the speech start is known exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from benchmarks.latency.corpus import CorpusConversation, CorpusItem
from benchmarks.latency.scenario import ScenarioParams, ScenarioTransport
from pipelines.config import load_pipeline_file
from pipelines.factory import build_session
from pipelines.launch import prepared
from processors.recording.events import EventLog
from tests.speech import speech_bounds, synthesize_speech

pytestmark = [pytest.mark.anyio, pytest.mark.models]

RATE = 16000
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
CASCADE = PIPELINES / "cascade-local.toml"
REALTIME = PIPELINES / "realtime-local.toml"
STORY = "Please tell me a long story about a dragon and a knight."
PAD = bytes(2 * int(0.3 * RATE))


def _item(turn: int, text: str, pcm: bytes, *, over_the_bot: bool, reply: bool) -> CorpusItem:
    clip = PAD + pcm + PAD
    start, end = speech_bounds(clip, RATE)
    return CorpusItem(
        conversation="interruptions",
        turn=turn,
        kind="barge_in" if over_the_bot and reply else "normal",
        pcm=clip,
        sample_rate=RATE,
        transcript=text,
        speech_start_s=start,
        speech_end_s=end,
        trigger="during_reply" if over_the_bot else "after_reply",
        gap_s=None,
        delay_s=0.5 if over_the_bot else None,
        snr_db=None,
        reply_expected=reply,
    )


class Run:
    """One conversation: the story request, then ``said`` over the bot's reply."""

    def __init__(self, log: EventLog, context: Any) -> None:
        self.log = log
        self.messages: list[dict[str, Any]] = context.messages

    def events(self, name: str, after_ns: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.log.events(name) if r["t_ns"] >= after_ns]

    @property
    def over(self) -> dict[str, Any]:
        return self.events("scenario_item")[1]

    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "user"]

    def assistant_messages(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "assistant"]


async def _converse(
    said: str,
    *,
    reply: bool,
    overrides: tuple[str, ...] = (),
    pipeline: Path = CASCADE,
    cut_s: float | None = None,
) -> Run:
    """The story request, then ``said`` (its first ``cut_s`` of speech only) over the bot."""
    story, over = synthesize_speech([STORY, said])
    if cut_s is not None:  # a sound too short to be a turn for the server
        start, _ = speech_bounds(over, RATE)
        over = over[: 2 * int((start + cut_s) * RATE)]
    conversation = CorpusConversation(
        "interruptions",
        (
            _item(1, STORY, story, over_the_bot=False, reply=True),
            _item(2, said, over, over_the_bot=True, reply=reply),
        ),
    )
    prompt = 'pipeline.system_prompt="You tell long stories of at least five sentences."'
    budget = ["llm.max_tokens=60"] if pipeline == CASCADE else []
    config = load_pipeline_file(pipeline, [prompt, *budget, *overrides])
    # a long tail: under load the story can stall between sentences, and the
    # conversation must not end in such a gap
    params = ScenarioParams(lead_in_s=0.5, tail_s=4.0, max_duration_s=150)
    transport = ScenarioTransport(conversation, params)
    log = EventLog()
    async with prepared(config) as ready:
        session = build_session(ready, transport, observers=[log])
        with anyio.fail_after(240):
            await session.task.run()
    run = Run(log, session.context)
    assert len(run.events("scenario_item")) == 2, "the story never started"
    started = run.events("user_started_speaking", run.over["t_ns"])
    assert started or cut_s, f"{said!r} over the bot made no user start at all: nothing was tested"
    return run


def _not_cut(run: Run) -> None:
    """The bot was not stopped: its story is whole in the context, and no second reply."""
    over = run.over["t_ns"]
    assert not run.events("interruption", over)
    assert not [r for r in run.events("bot_audio_stopped") if r["interrupted"]]
    assert len(run.events("llm_response_start")) == 1
    assert len(run.user_messages()) == 1
    spoken = " ".join(r["text"].strip() for r in run.events("tts_text"))
    assert run.assistant_messages() == [spoken]


async def test_a_backchannel_over_the_bot_neither_stops_it_nor_gets_a_reply() -> None:
    run = await _converse("Yeah.", reply=False)
    _not_cut(run)
    (ignored,) = run.events("barge_in_ignored")
    assert ignored["reason"] == "backchannel", ignored
    # it paused at the onset and played on from there
    assert run.events("bot_audio_paused") and run.events("bot_audio_resumed")


async def test_a_throat_clearing_sound_over_the_bot_does_not_lose_its_turn() -> None:
    run = await _converse("Ahem.", reply=False)  # Whisper writes it down as a filler
    _not_cut(run)
    (ignored,) = run.events("barge_in_ignored")
    assert ignored["reason"] == "no words", ignored


async def test_a_barge_in_opening_with_a_short_word_cuts_the_bot_and_keeps_the_word() -> None:
    run = await _converse("Wait, explain it like I am five years old.", reply=True)
    over = run.over
    (cut,) = [r for r in run.events("bot_audio_stopped", over["t_ns"]) if r["interrupted"]]
    (decided,) = run.events("barge_in")
    latency_ms = (cut["t_ns"] - over["speech_start_ns"]) / 1e6
    print(f"speech start to last bot sample: {latency_ms:.0f} ms")
    # The bot went quiet at the onset, before the words that confirmed it were known,
    # and well before the ~800 ms the time rule took on this sentence.
    assert cut["t_ns"] <= decided["t_ns"]
    assert 0 < latency_ms < 600
    heard = [r["text"] for r in run.events("transcription", over["t_ns"])]
    assert any("wait" in text.lower() for text in heard), heard
    assert "wait" in run.user_messages()[-1].lower()
    assert run.assistant_messages(), "nothing of the story reached the context"


async def test_min_words_keeps_the_bot_talking_over_fewer_words() -> None:
    run = await _converse("Stop it.", reply=False, overrides=("interruption.min_words=3",))
    _not_cut(run)
    (ignored,) = run.events("barge_in_ignored")
    assert ignored["reason"] == "too few words", ignored


# ------------------------------------------- realtime-local: the server decides


def _server_starts(run: Run) -> list[dict[str, Any]]:
    """The user turns the server started (the realtime stage reports them)."""
    over = run.over["t_ns"]
    return [r for r in run.events("user_started_speaking", over) if "realtime" in r["processor"]]


async def test_realtime_local_goes_quiet_at_the_onset_and_the_server_cuts_it() -> None:
    said = "Wait, explain it like I am five years old."
    run = await _converse(said, reply=True, pipeline=REALTIME)
    over = run.over
    cut = next(r for r in run.events("bot_audio_stopped", over["t_ns"]) if r["interrupted"])
    paused = run.events("onset_pause", over["t_ns"])[0]
    server = _server_starts(run)
    assert server, "the server started no user turn: nothing cut the bot"
    latency_ms = (cut["t_ns"] - over["speech_start_ns"]) / 1e6
    print(f"speech start to last bot sample: {latency_ms:.0f} ms")
    # The last bot sample was played before the server's turn came back: the local
    # onset silenced it, the server's speech_started only made the cut final.
    assert paused["t_ns"] < server[0]["t_ns"]
    assert cut["t_ns"] <= server[0]["t_ns"]
    assert run.events("onset_pause_taken", over["t_ns"])
    assert not run.events("onset_resume", over["t_ns"])
    heard = [r["text"] for r in run.events("transcription", over["t_ns"])]
    assert any("wait" in text.lower() for text in heard), heard


async def test_realtime_local_plays_on_after_a_sound_too_short_for_a_turn() -> None:
    # 150 ms of speech: the onset (96 ms) pauses the bot; the server, which needs
    # 200 ms for a turn, starts none, and the silence after it resumes the bot.
    run = await _converse("Hey.", reply=False, pipeline=REALTIME, cut_s=0.15)
    over = run.over["t_ns"]
    assert run.events("onset_pause", over), "the sound did not pause the bot: nothing was tested"
    assert not _server_starts(run)
    assert run.events("onset_resume", over)
    assert run.events("bot_audio_paused", over) and run.events("bot_audio_resumed", over)
    assert not [r for r in run.events("bot_audio_stopped") if r["interrupted"]]
    assert not run.events("transcription", over), "the sound made a user turn"
