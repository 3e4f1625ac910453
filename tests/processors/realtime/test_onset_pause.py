"""The onset pause in front of a realtime stage, with real Silero on Piper speech.

Audio is fed as fast as the pipeline takes it; where a pause or a resume fell is
read in stream time, from the input audio the stage passed on before it.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from framework import Direction, Pipeline, PipelineTask, TaskParams
from framework.frames import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioFrame,
    StartFrame,
    UserStartedSpeakingFrame,
)
from processors.interruption import InterruptionParams
from processors.realtime.onset import OnsetPauseProcessor
from tests.framework.helpers import Injector, Recorder, wait_until
from tests.speech import SENTENCES, Utterance, synthesize_speech, utterances

pytestmark = [pytest.mark.anyio, pytest.mark.models]

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
RATE = 16000
CHUNK = RATE // 50 * 2
LEAD_S = 0.5
WINDOWS_S = 0.1  # a few Silero windows of detection lag


@pytest.fixture(scope="module")
def utterance() -> Utterance:
    return utterances(synthesize_speech(SENTENCES[:1]))[0]


def _silence(seconds: float) -> bytes:
    return bytes(round(seconds * RATE) * 2)


class Harness:
    """head -> onset pause -> tail (the realtime stage's place) -> sink."""

    def __init__(self, params: InterruptionParams | None = None, **task: Any) -> None:
        self.head = Recorder("head")
        self.stage = OnsetPauseProcessor(params or InterruptionParams(rule="speech"))
        self.tail = Injector(name="tail")
        self.sink = Recorder("sink")
        self.task = PipelineTask(
            Pipeline([self.head, self.stage, self.tail, self.sink]), TaskParams(**task)
        )

    async def feed(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), CHUNK):
            await self.task.queue_frame(InputAudioFrame(audio=pcm[i : i + CHUNK], sample_rate=RATE))

    async def from_below(self, frame: Frame) -> None:
        """``frame`` comes up from the realtime stage (or the output transport)."""
        await self.tail.inject(frame, UP)
        await wait_until(lambda: any(f is frame for f in self.head.frames(UP, type(frame))))

    def at_s(self, kind: type[Frame]) -> list[float]:
        """Stream time of each ``kind`` frame: the input audio passed on before it."""
        times, samples = [], 0
        for frame, direction in self.sink.seen:
            if direction is not DOWN:
                continue
            if isinstance(frame, InputAudioFrame):
                samples += len(frame.audio) // 2
            elif isinstance(frame, kind):
                times.append(samples / RATE)
        return times

    async def run(self, script) -> None:  # type: ignore[no-untyped-def]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.task.run)
            with anyio.fail_after(30):
                while not self.task.running or not self.sink.frames(DOWN, StartFrame):
                    await anyio.sleep(0.005)
                await script(self)
                await self.task.stop_when_done()
        assert not self.task.errors, self.task.errors


async def test_speech_over_the_bot_pauses_it_at_the_onset_and_silence_resumes_it(
    utterance: Utterance,
) -> None:
    h = Harness()

    async def script(h: Harness) -> None:
        await h.from_below(BotStartedSpeakingFrame())
        await h.feed(_silence(LEAD_S) + utterance.pcm + _silence(1.0))

    await h.run(script)
    (paused,) = h.at_s(BotAudioPauseFrame)
    onset = LEAD_S + utterance.start_s + 0.096
    assert onset - 0.02 <= paused <= onset + WINDOWS_S
    (resumed,) = h.at_s(BotAudioResumeFrame)  # no turn from the server: a cough, say
    quiet = LEAD_S + utterance.end_s + h.stage.resume_ms / 1000
    assert quiet - 0.02 <= resumed <= quiet + WINDOWS_S
    assert h.sink.frames(DOWN, BotAudioPauseFrame)[0].timeout_s == 1.5
    assert not h.stage.paused


@pytest.mark.parametrize(
    "decided",
    [UserStartedSpeakingFrame(), BotStoppedSpeakingFrame(interrupted=True)],
    ids=["server-turn", "cut"],
)
async def test_once_the_server_takes_the_turn_the_bot_is_not_resumed(
    utterance: Utterance, decided: Frame
) -> None:
    h = Harness()
    half = len(utterance.pcm) // 4 * 2

    async def script(h: Harness) -> None:
        await h.from_below(BotStartedSpeakingFrame())
        await h.feed(_silence(LEAD_S) + utterance.pcm[:half])
        await wait_until(lambda: bool(h.sink.frames(DOWN, BotAudioPauseFrame)))
        await h.from_below(decided)
        await h.feed(utterance.pcm[half:] + _silence(1.0))

    await h.run(script)
    assert len(h.at_s(BotAudioPauseFrame)) == 1
    assert not h.at_s(BotAudioResumeFrame)


@pytest.mark.parametrize(
    ("bot", "params", "task"),
    [
        (False, InterruptionParams(rule="speech"), {}),
        (True, InterruptionParams(rule="speech", pause_bot=False), {}),
        (True, InterruptionParams(rule="speech"), {"allow_interruptions": False}),
    ],
    ids=["bot-silent", "pause-bot-off", "no-interruptions"],
)
async def test_it_pauses_nothing_unless_the_bot_speaks_and_may_be_interrupted(
    utterance: Utterance, bot: bool, params: InterruptionParams, task: dict[str, Any]
) -> None:
    h = Harness(params, **task)

    async def script(h: Harness) -> None:
        if bot:
            await h.from_below(BotStartedSpeakingFrame())
        await h.feed(_silence(LEAD_S) + utterance.pcm + _silence(1.0))

    await h.run(script)
    assert not h.at_s(BotAudioPauseFrame) and not h.at_s(BotAudioResumeFrame)
    # the audio goes on to the realtime stage whole
    audio = b"".join(f.audio for f in h.sink.frames(DOWN, InputAudioFrame))
    assert audio == _silence(LEAD_S) + utterance.pcm + _silence(1.0)


def test_resume_ms_is_checked() -> None:
    with pytest.raises(ValueError, match="resume_ms"):
        OnsetPauseProcessor(resume_ms=0)
