"""The user context aggregator after a false end of turn: the resumed turn rejoins the first."""

from __future__ import annotations

import pytest

from framework import Direction, Frame
from framework.frames import (
    LLMMessagesFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.llm.context import LLMContext, UserContextAggregator, UserContextAggregatorParams
from tests.framework.helpers import Injector, Recorder

pytestmark = pytest.mark.anyio
S = 1_000_000_000  # ns


def _chain(params: UserContextAggregatorParams | None = None):  # type: ignore[no-untyped-def]
    user = UserContextAggregator(LLMContext("Be brief."), params)
    head, tail = Injector(), Recorder()
    head.link(user)
    user.link(tail)
    return head, user, tail


async def _send(head: Injector, *frames: Frame) -> None:
    for frame in frames:
        await head.inject(frame, Direction.DOWNSTREAM)


async def _turn(head: Injector, start_s: float, end_s: float, text: str) -> None:
    await _send(
        head,
        UserStartedSpeakingFrame(speech_start_ns=int(start_s * S)),
        UserStoppedSpeakingFrame(speech_end_ns=int(end_s * S)),
        TranscriptionFrame(text=text),
    )


async def test_a_turn_resumed_soon_after_its_end_is_one_message_without_the_reply() -> None:
    head, user, tail = _chain()
    await _turn(head, 1.0, 2.4, "I would like to book a table for")
    user.llm_context.add_assistant_message("Sure, for")  # heard before the bot yielded
    await _turn(head, 3.1, 3.9, "four people at")
    user.llm_context.add_assistant_message("Four")
    await _turn(head, 4.8, 6.6, "eight on Saturday.")
    assert user.llm_context.messages == [
        {
            "role": "user",
            "content": "I would like to book a table for four people at eight on Saturday.",
        }
    ]
    # Each part asked for an answer on the whole utterance so far.
    asks = [f.messages[-1]["content"] for f in tail.frames(Direction.DOWNSTREAM, LLMMessagesFrame)]
    assert asks[-1].startswith("I would like") and len(asks) == 3


async def test_a_turn_after_the_window_is_a_new_message() -> None:
    head, user, _tail = _chain(UserContextAggregatorParams(rejoin_ms=1000))
    await _turn(head, 1.0, 2.0, "What time is it?")
    user.llm_context.add_assistant_message("It is noon.")
    await _turn(head, 3.5, 4.0, "Thanks.")
    assert [m["content"] for m in user.llm_context.messages] == [
        "What time is it?",
        "It is noon.",
        "Thanks.",
    ]


async def test_rejoining_is_off_at_zero_and_without_times() -> None:
    head, user, _tail = _chain(UserContextAggregatorParams(rejoin_ms=0))
    await _turn(head, 1.0, 2.0, "One")
    await _turn(head, 2.1, 3.0, "two")
    head2, user2, _ = _chain()
    await _send(head2, UserStartedSpeakingFrame(), UserStoppedSpeakingFrame())
    await _send(head2, TranscriptionFrame(text="One"))
    await _send(head2, UserStartedSpeakingFrame(), UserStoppedSpeakingFrame())
    await _send(head2, TranscriptionFrame(text="two"))
    for u in (user, user2):
        assert [m["content"] for m in u.llm_context.messages] == ["One", "two"]


async def test_a_noise_after_the_end_keeps_the_first_part_and_its_reply() -> None:
    head, user, _tail = _chain()
    await _turn(head, 1.0, 2.0, "Tell me a joke.")
    user.llm_context.add_assistant_message("Why did")
    await _turn(head, 2.5, 2.8, "")  # a cough: no words
    assert [m["content"] for m in user.llm_context.messages] == ["Tell me a joke.", "Why did"]


async def test_a_rejoined_turn_that_pauses_and_resumes_keeps_every_part() -> None:
    head, user, _tail = _chain()
    await _turn(head, 1.0, 2.0, "My number is")
    await _send(
        head,
        UserStartedSpeakingFrame(speech_start_ns=int(2.6 * S)),
        UserPausedSpeakingFrame(),
        TranscriptionFrame(text="two nine"),
    )
    # The pause's speculative message holds both parts.
    assert [m["content"] for m in user.llm_context.messages] == ["My number is two nine"]
    await _send(head, UserResumedSpeakingFrame())
    assert user.llm_context.messages == []
    await _send(
        head,
        UserPausedSpeakingFrame(),
        TranscriptionFrame(text="two nine three."),
        UserStoppedSpeakingFrame(speech_end_ns=int(4.0 * S)),
    )
    assert [m["content"] for m in user.llm_context.messages] == ["My number is two nine three."]


async def test_an_identical_earlier_message_is_never_withdrawn() -> None:
    head, user, _tail = _chain()
    await _turn(head, 1.0, 2.0, "Yes.")
    user.llm_context.add_assistant_message("Great, which day?")
    await _turn(head, 10.0, 11.0, "Yes.")
    await _send(
        head,
        UserStartedSpeakingFrame(speech_start_ns=int(11.5 * S)),
        UserPausedSpeakingFrame(),
        TranscriptionFrame(text="Monday"),
        UserResumedSpeakingFrame(),
        UserPausedSpeakingFrame(),
        TranscriptionFrame(text="Monday please."),
        UserStoppedSpeakingFrame(speech_end_ns=int(13.0 * S)),
    )
    assert [m["content"] for m in user.llm_context.messages] == [
        "Yes.",
        "Great, which day?",
        "Yes. Monday please.",
    ]
