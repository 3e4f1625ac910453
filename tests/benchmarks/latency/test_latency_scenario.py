"""The scenario transport places turns relative to a (scripted) bot, to the sample.

The bot here is a small processor with known behaviour: it answers 1 s of tone
``REPLY_DELAY_S`` after the user's tone has been quiet for 0.2 s, and stops at
once (with an interruption) when the user speaks over it. The conversation runs
in real time; only loose bounds are asserted on timings, exact ones on what the
transport itself decides (sample positions).
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

from benchmarks.latency.corpus import CorpusConversation, CorpusItem
from benchmarks.latency.measure import measure_conversation
from benchmarks.latency.scenario import ScenarioParams, ScenarioTransport
from framework import Direction, Pipeline, PipelineTask, Processor, TaskParams, handles
from framework.audio import sine_wave
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioFrame,
    OutputAudioFrame,
)
from processors.recording.events import EventLog

pytestmark = pytest.mark.anyio

RATE = 16000
REPLY_DELAY_S = 0.1
NS = 1_000_000_000


class ToneBot(Processor):
    """Answers a tone with a tone; stops when talked over."""

    def __init__(self) -> None:
        super().__init__(name="tonebot")
        self.quiet_s = 0.0
        self.heard = False
        self.speaking = False

    @handles(BotStartedSpeakingFrame, BotStoppedSpeakingFrame)
    async def _bot(self, frame: Any, direction: Direction) -> None:
        self.speaking = isinstance(frame, BotStartedSpeakingFrame)
        await self.push(frame, direction)

    @handles(InputAudioFrame)
    async def _audio(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        level = np.abs(np.frombuffer(frame.audio, dtype=np.int16)).max()
        if level > 1000:
            if self.speaking and not self.heard:
                await self.broadcast_interruption()
            self.heard, self.quiet_s = True, 0.0
            return
        self.quiet_s += 0.02
        if self.heard and self.quiet_s >= 0.2:
            self.heard = False
            self.context.task_group.start_soon(self._reply)

    async def _reply(self) -> None:
        await anyio.sleep(REPLY_DELAY_S)
        tone = sine_wave(440, 24000, 1.0)
        await self.push(OutputAudioFrame(audio=tone, sample_rate=24000))


def _item(turn: int, kind: str, **extra: Any) -> CorpusItem:
    pcm = bytes(2 * int(0.3 * RATE)) + sine_wave(300, RATE, 0.6) + bytes(2 * int(0.3 * RATE))
    fields: dict[str, Any] = dict(
        conversation="tones",
        turn=turn,
        kind=kind,
        pcm=pcm,
        sample_rate=RATE,
        transcript="tone",
        speech_start_s=0.3,
        speech_end_s=0.9,
        trigger="during_reply" if kind == "barge_in" else "after_reply",
        gap_s=None,
        delay_s=None,
        snr_db=None,
        reply_expected=True,
    )
    fields.update(extra)
    return CorpusItem(**fields)


async def test_turns_follow_the_bot_and_speech_times_are_exact() -> None:
    conversation = CorpusConversation(
        "tones", (_item(1, "normal"), _item(2, "barge_in", delay_s=0.3), _item(3, "normal"))
    )
    params = ScenarioParams(lead_in_s=0.2, gap_s=0.4, tail_s=0.3, record=True, max_duration_s=30)
    transport = ScenarioTransport(conversation, params)
    log = EventLog(llm_text=True)
    pipeline = Pipeline([transport.input(), ToneBot(), transport.output()])
    task = PipelineTask(pipeline, TaskParams(audio_out_sample_rate=24000), observers=[log])
    with anyio.fail_after(40):
        await task.run()

    items = log.events("scenario_item")
    assert [r["kind"] for r in items] == ["normal", "barge_in", "normal"]
    origin = log.events("scenario_start")[0]["t_ns"]
    for r in items:  # placed on the sample grid; speech exactly where the corpus says
        position = (r["t_ns"] - origin) * RATE / NS
        assert abs(position - round(position)) < 0.01
        assert r["speech_start_ns"] - r["t_ns"] == round(0.3 * NS)
        assert r["speech_end_ns"] - r["t_ns"] == round(0.9 * NS)
    first_audio = log.events("bot_first_audio")
    barge, last = items[1], items[2]
    # the barge-in starts delay_s after the bot's first reply started (plus < 1 chunk)
    assert barge["trigger"] == "during_reply"
    assert barge["ref_ns"] == first_audio[0]["t_ns"]
    assert 0 <= barge["t_ns"] - (barge["ref_ns"] + round(0.3 * NS)) < 0.05 * NS
    # the last turn starts gap_s after the bot's reply to the barge-in stopped
    assert last["trigger"] == "after_reply"
    stops = [r["t_ns"] for r in log.events("bot_audio_stopped") if r["t_ns"] < last["t_ns"]]
    assert last["ref_ns"] == stops[-1]
    assert 0 <= last["t_ns"] - (last["ref_ns"] + round(0.4 * NS)) < 0.05 * NS

    result = measure_conversation(log.records, "s2s")
    turns = result.turns
    assert all(t.replied for t in turns)
    for t in turns:  # 0.2 s of quiet + the bot's delay, within a couple of chunks
        assert 0.25 < t.v2v_s < 0.6
        assert t.heard_s is not None and t.heard_s >= t.v2v_s
    assert turns[1].bot_speaking_at_start
    assert turns[1].barge_in_s is not None and 0 < turns[1].barge_in_s < 0.3
    assert result.end_reason == "done"
    pcm, rate = transport.stereo_recording()
    assert rate == 24000
    assert len(pcm) / 4 / rate == pytest.approx(result.duration_s, abs=0.1)
