"""The conversation context and its aggregators: turn logic, heard text, commits."""

from __future__ import annotations

import pytest

from framework import Direction, Frame, Processor
from framework.frames import (
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMRunFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.llm.context import (
    AssistantContextAggregator,
    LLMContext,
    UserContextAggregator,
    UserContextAggregatorParams,
    context_pair,
)
from tests.framework.helpers import Injector, Recorder

pytestmark = pytest.mark.anyio

SYSTEM = {"role": "system", "content": "Be brief."}


def chain(aggregator: Processor) -> tuple[Injector, Recorder]:
    """Link injector -> aggregator -> recorder (all inline: exact frame order)."""
    head, tail = Injector(), Recorder()
    head.link(aggregator)
    aggregator.link(tail)
    return head, tail


async def send(head: Injector, *frames: Frame) -> None:
    for frame in frames:
        await head.inject(frame, Direction.DOWNSTREAM)


def started() -> UserStartedSpeakingFrame:
    return UserStartedSpeakingFrame()


def stopped() -> UserStoppedSpeakingFrame:
    return UserStoppedSpeakingFrame()


def said(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text=text)


def kinds(tail: Recorder) -> list[str]:
    return [type(f).__name__ for f in tail.frames()]


# ------------------------------------------------------------------ context


def test_context_snapshot_puts_the_system_prompt_first_and_copies() -> None:
    tools = [{"type": "function", "function": {"name": "time", "parameters": {}}}]
    context = LLMContext("Be brief.", tools=tools)
    context.add_user_message("hi")
    context.add_assistant_message("hello")
    context.add_tool_call("c1", "time", "{}")
    context.add_tool_result("c1", "noon")
    snapshot = context.snapshot()
    assert snapshot[0] == SYSTEM
    assert [m["role"] for m in snapshot] == ["system", "user", "assistant", "assistant", "tool"]
    snapshot[1]["content"] = "changed"
    assert context.messages[0]["content"] == "hi"
    frame = context.messages_frame()
    assert frame.messages == context.snapshot()
    assert frame.tools == tools and frame.tools is not context.tools
    context.system_prompt = None
    assert context.snapshot()[0]["role"] == "user"
    context.clear()
    assert len(context) == 0 and context.tools == tools


def test_context_rejects_bad_messages() -> None:
    context = LLMContext()
    with pytest.raises(ValueError, match="role"):
        context.add_message({"role": "narrator", "content": "x"})
    with pytest.raises(ValueError, match="system_prompt"):
        context.add_message({"role": "system", "content": "x"})
    with pytest.raises(TypeError, match="dict"):
        context.add_message("hello")  # type: ignore[arg-type]


# ---------------------------------------------------------- user aggregator


async def test_several_finals_while_speaking_make_one_message() -> None:
    user, _ = context_pair("Be brief.")
    head, tail = chain(user)
    await send(head, started(), said("What time"), said("is it?"))
    assert tail.frames(kind=LLMMessagesFrame) == []
    await send(head, stopped())
    (frame,) = tail.frames(kind=LLMMessagesFrame)
    assert frame.messages == [SYSTEM, {"role": "user", "content": "What time is it?"}]
    assert kinds(tail)[-1] == "LLMMessagesFrame"


async def test_turn_ends_on_the_transcript_when_it_comes_after_the_stop() -> None:
    user, _ = context_pair("Be brief.")
    head, tail = chain(user)
    await send(head, started(), stopped())
    assert tail.frames(kind=LLMMessagesFrame) == []
    await send(head, said("Hello there."))
    assert kinds(tail) == [
        "UserStartedSpeakingFrame",
        "UserStoppedSpeakingFrame",
        "TranscriptionFrame",
        "LLMMessagesFrame",
    ]
    assert tail.frames(kind=LLMMessagesFrame)[0].messages[-1]["content"] == "Hello there."


async def test_turn_ends_on_the_stop_when_the_transcript_came_first() -> None:
    user, _ = context_pair("Be brief.")
    head, tail = chain(user)
    await send(head, started(), said("Hello there."))
    assert tail.frames(kind=LLMMessagesFrame) == []  # the user is still speaking
    await send(head, stopped())
    assert kinds(tail) == [
        "UserStartedSpeakingFrame",
        "TranscriptionFrame",
        "UserStoppedSpeakingFrame",
        "LLMMessagesFrame",
    ]
    assert len(user.llm_context) == 1


async def test_a_resumed_turn_waits_for_every_transcript() -> None:
    context = LLMContext()
    user = UserContextAggregator(context, UserContextAggregatorParams(separator=" / "))
    head, tail = chain(user)
    await send(head, started(), stopped(), started(), said("one"), stopped())
    assert tail.frames(kind=LLMMessagesFrame) == []
    await send(head, said("two"))
    (frame,) = tail.frames(kind=LLMMessagesFrame)
    assert frame.messages == [{"role": "user", "content": "one / two"}]


async def test_empty_turns_ask_nothing_and_the_next_turn_starts_clean() -> None:
    user, _ = context_pair()
    head, tail = chain(user)
    await send(head, started(), stopped(), said("  "))
    assert tail.frames(kind=LLMMessagesFrame) == []
    assert len(user.llm_context) == 0
    await send(head, started(), stopped(), said("Hi."))
    (frame,) = tail.frames(kind=LLMMessagesFrame)
    assert frame.messages == [{"role": "user", "content": "Hi."}]


async def test_a_transcript_without_speaking_frames_is_a_turn_of_its_own() -> None:
    user, _ = context_pair()
    head, tail = chain(user)
    await send(head, said("typed text"))
    assert [f.messages[-1]["content"] for f in tail.frames(kind=LLMMessagesFrame)] == ["typed text"]


async def test_llm_run_frame_sends_the_context_as_it_stands() -> None:
    user, _ = context_pair("Be brief.")
    head, tail = chain(user)
    await send(head, LLMRunFrame())
    assert [f.messages for f in tail.frames(kind=LLMMessagesFrame)] == [[SYSTEM]]
    assert tail.frames(kind=LLMRunFrame) == []


# ----------------------------------------------------- assistant aggregator


async def test_assistant_keeps_only_heard_text_and_commits_at_the_end() -> None:
    user, assistant = context_pair()
    head, tail = chain(assistant)
    await send(
        head,
        LLMResponseStartFrame(),
        LLMTextFrame(text="Hello there. How are you? I am fine."),  # generated, not heard
        TTSTextFrame(text="Hello there."),
        TTSTextFrame(text="How are you?"),
    )
    assert len(assistant.llm_context) == 0
    assert assistant.pending_text == "Hello there. How are you?"
    await send(head, LLMResponseEndFrame())
    assert assistant.llm_context.messages == [
        {"role": "assistant", "content": "Hello there. How are you?"}
    ]
    assert user.llm_context is assistant.llm_context
    assert len(tail.frames()) == 5  # everything passes on


async def test_assistant_commits_what_was_heard_on_interruption_and_only_once() -> None:
    _, assistant = context_pair()
    head, _ = chain(assistant)
    await send(head, LLMResponseStartFrame(), TTSTextFrame(text="The capital"))
    await assistant.receive(InterruptionFrame(), Direction.DOWNSTREAM)
    await send(head, LLMResponseEndFrame())
    assert assistant.llm_context.messages == [{"role": "assistant", "content": "The capital"}]


async def test_assistant_commits_nothing_when_nothing_was_heard() -> None:
    _, assistant = context_pair()
    head, _ = chain(assistant)
    await send(head, LLMResponseStartFrame(), LLMTextFrame(text="Unheard."))
    await assistant.receive(InterruptionFrame(), Direction.DOWNSTREAM)
    await send(head, LLMResponseStartFrame(), LLMResponseEndFrame())
    assert len(assistant.llm_context) == 0


async def test_a_full_exchange_builds_the_conversation() -> None:
    user, assistant = context_pair("Be brief.")
    user_head, user_tail = chain(user)
    assistant_head, _ = chain(assistant)
    await send(user_head, started(), stopped(), said("Hi."))
    await send(assistant_head, TTSTextFrame(text="Hello!"), LLMResponseEndFrame())
    await send(user_head, started(), stopped(), said("Bye."))
    last = user_tail.frames(kind=LLMMessagesFrame)[-1]
    assert last.messages == [
        SYSTEM,
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye."},
    ]


def test_context_pair_takes_a_context_or_settings_not_both() -> None:
    context = LLMContext("x")
    user, assistant = context_pair(context=context)
    assert user.llm_context is context and assistant.llm_context is context
    with pytest.raises(ValueError, match="not both"):
        context_pair("y", context=context)
    with pytest.raises(TypeError, match="LLMContext"):
        AssistantContextAggregator("not a context")  # type: ignore[arg-type]


# ------------------------------------------------------------------ speculation


async def test_a_pause_with_its_transcript_starts_the_answer_before_the_stop() -> None:
    context = LLMContext()
    head, tail = chain(UserContextAggregator(context))
    await send(head, started(), UserPausedSpeakingFrame(), said("What time is it?"))
    assert len(tail.frames(kind=LLMMessagesFrame)) == 1
    await send(head, stopped())  # confirms: nothing more is sent
    assert len(tail.frames(kind=LLMMessagesFrame)) == 1
    assert context.snapshot() == [{"role": "user", "content": "What time is it?"}]
    assert tail.frames(kind=InterruptionFrame) == []


async def test_a_resume_takes_the_answer_back_and_the_whole_turn_is_answered() -> None:
    context = LLMContext()
    head, tail = chain(UserContextAggregator(context))
    await send(head, started(), UserPausedSpeakingFrame(), said("What time"))
    assert len(tail.frames(kind=LLMMessagesFrame)) == 1
    await send(head, UserResumedSpeakingFrame())
    # The speculative answer is cancelled both ways and the message taken back.
    assert len(tail.frames(kind=InterruptionFrame)) == 1
    assert context.snapshot() == []
    await send(head, UserPausedSpeakingFrame(), said("What time does the store open?"), stopped())
    [_, final] = tail.frames(kind=LLMMessagesFrame)
    assert final.messages == [{"role": "user", "content": "What time does the store open?"}]
    assert context.snapshot() == final.messages


async def test_a_resume_before_the_pause_transcript_needs_no_interruption() -> None:
    context = LLMContext()
    head, tail = chain(UserContextAggregator(context))
    await send(head, started(), UserPausedSpeakingFrame(), UserResumedSpeakingFrame())
    await send(head, UserPausedSpeakingFrame(), said("Hello there."), stopped())
    assert tail.frames(kind=InterruptionFrame) == []
    [frame] = tail.frames(kind=LLMMessagesFrame)
    assert frame.messages == [{"role": "user", "content": "Hello there."}]


async def test_a_transcript_after_the_confirming_stop_is_not_speculative() -> None:
    context = LLMContext()
    head, tail = chain(UserContextAggregator(context))
    await send(head, started(), UserPausedSpeakingFrame(), stopped(), said("Thanks."))
    assert len(tail.frames(kind=LLMMessagesFrame)) == 1
    await send(head, started(), UserPausedSpeakingFrame(), UserResumedSpeakingFrame())
    assert context.snapshot() == [{"role": "user", "content": "Thanks."}]
