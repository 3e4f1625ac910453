"""The interruption stage on scripted frames: what it holds, pauses, stops and lets go.

Real-model runs of the same rules are in tests/pipelines/test_interruptions.py.
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
    InterimTranscriptionFrame,
    InterruptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.interruption import (
    InterruptionParams,
    InterruptionProcessor,
    is_backchannel,
    words_of,
)
from tests.framework.helpers import Injector, Recorder, wait_until

pytestmark = pytest.mark.anyio

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
TURN_FRAMES = (
    UserStartedSpeakingFrame,
    UserPausedSpeakingFrame,
    UserStoppedSpeakingFrame,
    TranscriptionFrame,
)


class Harness:
    def __init__(self, params: InterruptionParams | None = None, **task: Any) -> None:
        self.head = Injector(name="head")
        self.up = Recorder("up")
        self.stage = InterruptionProcessor(params)
        self.tail = Injector(name="tail")
        self.sink = Recorder("sink")
        pipeline = Pipeline([self.up, self.head, self.stage, self.tail, self.sink])
        self.task = PipelineTask(pipeline, TaskParams(**task))

    async def user(self, *frames: Frame) -> None:
        for frame in frames:
            await self.head.inject(frame, DOWN)

    async def bot_starts(self) -> None:
        await self.tail.inject(BotStartedSpeakingFrame(), UP)

    def down(self, *kinds: type) -> list[Any]:
        return [f for f in self.sink.frames(DOWN) if isinstance(f, kinds)]

    def turn(self) -> list[str]:
        return [type(f).__name__ for f in self.down(*TURN_FRAMES)]


async def _run(h: Harness, script) -> None:  # type: ignore[no-untyped-def]
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.task.run)
        with anyio.fail_after(20):
            while not h.sink.frames(DOWN, StartFrame):
                await anyio.sleep(0.005)
            await script(h)
            await h.task.stop_when_done()


def test_words_leave_out_punctuation_and_sounds_that_are_not_words() -> None:
    assert words_of("Wait, explain it!") == ["wait", "explain", "it"]
    assert words_of("Uh-huh. Mm-hmm, HMHM, um, Ha-ha.") == []
    phrases = [words_of(p) for p in ("yeah", "i see", "okay")]
    assert is_backchannel(words_of("Yeah, I see. Okay."), phrases)
    assert not is_backchannel(words_of("Yeah, but why?"), phrases)
    assert not is_backchannel([], phrases)


def test_backchannels_are_checked() -> None:
    with pytest.raises(ValueError, match="no letters"):
        InterruptionParams(backchannels=["yeah", "..."])
    stage = InterruptionProcessor(InterruptionParams(min_words=2))
    assert not stage.barge_in_words("Stop.")
    assert stage.barge_in_words("Stop it.")
    assert not stage.barge_in_words("Okay, right.")


async def test_a_word_over_the_bot_pauses_it_then_stops_it_and_the_turn_goes_on() -> None:
    h = Harness()

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame())
        await wait_until(lambda: h.down(BotAudioPauseFrame))
        assert h.turn() == []  # held until the words decide
        assert h.stage.deciding
        await h.user(InterimTranscriptionFrame(text="Wait,"))
        await wait_until(lambda: h.down(InterruptionFrame))
        await h.user(UserPausedSpeakingFrame(), TranscriptionFrame(text="Wait, stop."))
        await h.user(UserStoppedSpeakingFrame())

    await _run(h, script)
    assert len(h.down(InterruptionFrame)) == 1
    assert len(h.up.frames(UP, InterruptionFrame)) == 1
    assert h.turn() == [
        "UserStartedSpeakingFrame",
        "UserPausedSpeakingFrame",
        "TranscriptionFrame",
        "UserStoppedSpeakingFrame",
    ]
    # the start went on after the interruption, as a turn processor's would
    frames = h.sink.frames(DOWN)
    first_start = next(i for i, f in enumerate(frames) if isinstance(f, UserStartedSpeakingFrame))
    assert frames.index(h.down(InterruptionFrame)[0]) < first_start
    assert not h.down(BotAudioResumeFrame)


async def test_a_backchannel_lets_the_bot_go_on_and_makes_no_turn() -> None:
    h = Harness()

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), InterimTranscriptionFrame(text="Yeah"))
        await h.user(UserPausedSpeakingFrame(), TranscriptionFrame(text="Yeah, okay."))
        await wait_until(lambda: h.down(BotAudioResumeFrame))
        await h.user(UserStoppedSpeakingFrame())

    await _run(h, script)
    assert not h.down(InterruptionFrame)
    assert h.turn() == []
    assert not h.stage.deciding
    assert len(h.down(BotAudioPauseFrame)) == len(h.down(BotAudioResumeFrame)) == 1


async def test_a_sound_with_no_words_resumes_the_bot_and_speech_after_it_counts() -> None:
    h = Harness()

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), UserPausedSpeakingFrame())
        await h.user(TranscriptionFrame(text="Hmm."))  # a cough, written down as a sound
        await wait_until(lambda: h.down(BotAudioResumeFrame))
        # the user goes on before the turn ends: the bot pauses again, the words decide
        await h.user(UserResumedSpeakingFrame())
        await wait_until(lambda: len(h.down(BotAudioPauseFrame)) == 2)
        await h.user(InterimTranscriptionFrame(text="Hmm, actually"))
        await h.user(UserPausedSpeakingFrame(), TranscriptionFrame(text="Hmm, actually no."))
        await h.user(UserStoppedSpeakingFrame())

    await _run(h, script)
    assert len(h.down(InterruptionFrame)) == 1
    # the superseded pause and transcript never reach the context
    assert h.turn() == [
        "UserStartedSpeakingFrame",
        "UserPausedSpeakingFrame",
        "TranscriptionFrame",
        "UserStoppedSpeakingFrame",
    ]
    assert [f.text for f in h.down(TranscriptionFrame)] == ["Hmm, actually no."]


async def test_min_words_waits_for_enough_words() -> None:
    h = Harness(InterruptionParams(min_words=3))

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), InterimTranscriptionFrame(text="Stop it"))
        await anyio.sleep(0.05)
        assert not h.down(InterruptionFrame)
        await h.user(InterimTranscriptionFrame(text="Stop it now"))
        await wait_until(lambda: h.down(InterruptionFrame))

    await _run(h, script)
    assert h.turn() == ["UserStartedSpeakingFrame"]


async def test_a_final_transcript_too_short_for_min_words_is_dropped() -> None:
    h = Harness(InterruptionParams(min_words=2))

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), UserStoppedSpeakingFrame())
        await h.user(TranscriptionFrame(text="Stop."))

    await _run(h, script)
    assert not h.down(InterruptionFrame)
    assert h.turn() == []
    assert h.down(BotAudioResumeFrame)


async def test_speech_without_words_for_max_pause_ms_stops_the_bot() -> None:
    h = Harness(InterruptionParams(max_pause_ms=100))

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame())
        await wait_until(lambda: h.down(InterruptionFrame), limit_s=5)

    await _run(h, script)
    assert h.turn() == ["UserStartedSpeakingFrame"]


async def test_the_timer_leaves_a_quiet_user_to_the_transcript() -> None:
    h = Harness(InterruptionParams(max_pause_ms=50))

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), UserPausedSpeakingFrame())
        await anyio.sleep(0.2)  # past max_pause_ms, but the user is quiet
        assert not h.down(InterruptionFrame)
        await h.user(TranscriptionFrame(text=""), UserStoppedSpeakingFrame())

    await _run(h, script)
    assert not h.down(InterruptionFrame)
    assert h.turn() == []


@pytest.mark.parametrize("case", ["bot silent", "speech rule", "no interruptions"])
async def test_turns_pass_untouched_when_the_rule_does_not_apply(case: str) -> None:
    params = InterruptionParams(rule="speech") if case == "speech rule" else None
    task: dict[str, Any] = {"allow_interruptions": case != "no interruptions"}
    h = Harness(params, **task)

    async def script(h: Harness) -> None:
        if case != "bot silent":
            await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), UserStoppedSpeakingFrame())
        await h.user(TranscriptionFrame(text="Yeah."))

    await _run(h, script)
    assert h.turn() == [
        "UserStartedSpeakingFrame",
        "UserStoppedSpeakingFrame",
        "TranscriptionFrame",
    ]
    assert not h.down(InterruptionFrame, BotAudioPauseFrame)


@pytest.mark.parametrize("mid_reply", [True, False])
async def test_a_silence_in_the_middle_of_a_reply_still_is_the_bots_floor(mid_reply: bool) -> None:
    h = Harness()

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.tail.inject(BotStoppedSpeakingFrame(mid_reply=mid_reply), UP)
        await h.user(UserStartedSpeakingFrame(), UserStoppedSpeakingFrame())
        await h.user(TranscriptionFrame(text="Okay."))

    await _run(h, script)
    if mid_reply:  # the next sentence is coming: "okay" is a backchannel to it
        assert h.turn() == []
        assert h.down(BotAudioPauseFrame) and h.down(BotAudioResumeFrame)
    else:  # the reply is over: "okay" is a turn of its own
        assert h.turn() == [
            "UserStartedSpeakingFrame",
            "UserStoppedSpeakingFrame",
            "TranscriptionFrame",
        ]


async def test_pause_bot_false_leaves_the_bot_talking_until_the_words_decide() -> None:
    h = Harness(InterruptionParams(pause_bot=False))

    async def script(h: Harness) -> None:
        await h.bot_starts()
        await h.user(UserStartedSpeakingFrame(), InterimTranscriptionFrame(text="Wait"))
        await wait_until(lambda: h.down(InterruptionFrame))

    await _run(h, script)
    assert not h.down(BotAudioPauseFrame, BotAudioResumeFrame)
