"""LlamaCppLLM when llama.cpp fails mid-reply: the reply ends, the next one is answered.

The fault is at the model boundary: the llama.cpp context's ``decode`` (the
call that runs the network on a batch of tokens) raises, as it does when
``llama_decode`` returns an error. A second test uses a real error of
llama-cpp-python: a prompt longer than the context window.
"""

from __future__ import annotations

import pytest

from framework import EndReason, Processor, TaskParams
from framework.frames import LLMResponseEndFrame, LLMTextFrame
from processors.llm.llama_cpp import LlamaCppLLM, LlamaCppLLMParams
from tests.processors.fault_helpers import Harness, converse, errors_of, failing_calls, wait_for

from .test_llm_llama_cpp import ask

pytestmark = pytest.mark.models


class Chat(Harness):
    """An LLM stage and a recorder in a task."""

    def __init__(self, llm: Processor, params: TaskParams | None = None) -> None:
        super().__init__([llm], params)
        self.llm = llm

    def replies(self) -> list[str]:
        """The text of each ended reply, in order."""
        texts, parts = [], []
        for frame in self.sink.frames():
            if isinstance(frame, LLMTextFrame):
                parts.append(frame.text)
            elif isinstance(frame, LLMResponseEndFrame):
                texts.append("".join(parts))
                parts = []
        return texts

    async def reply_to(self, question: str, n: int) -> None:
        """Ask, and wait until ``n`` replies have ended (or the task has)."""
        await self.task.queue_frame(ask(question))
        await wait_for(self.ended(n), 60)


def llama(**settings: object) -> Chat:
    return Chat(LlamaCppLLM(LlamaCppLLMParams.model_validate(settings), name="llm"))


def test_a_generation_that_fails_mid_reply_ends_it_and_the_next_is_answered() -> None:
    raised: list[int] = []

    async def drive(chat: Chat) -> None:
        # Decode call 1 evaluates the prompt (its logits give token 1), each later call
        # one more token: the 4th call fails after 3 tokens.
        error = "llama_decode returned 1 (injected)"
        with failing_calls(chat.llm.model._ctx, "decode", after=3, error=error) as calls:
            await chat.reply_to("Tell me about the moon.", 1)
        raised.append(calls.raised)
        await chat.reply_to("What colour is the sky?", 2)
        await chat.task.stop_when_done()

    chat, reason = converse(llama, drive)
    assert reason is EndReason.ENDED and raised == [1]
    [error] = chat.task.errors
    assert errors_of(chat.task, "llm") == [error] and not error.fatal
    assert "failed after 3 tokens" in error.message and "(injected)" in error.message
    first, second = chat.replies()
    print(f"\ncut reply: {first!r}; next reply: {second!r}")
    assert first and len(second.split()) >= 3  # the cut reply kept its tokens; a full answer next
    assert chat.llm.failures.in_a_row == 0 and not chat.llm.generating


def test_a_prompt_over_the_context_window_fails_that_reply_only() -> None:
    """A real llama-cpp-python error: the request cannot fit n_ctx; short questions still work."""

    async def drive(chat: Chat) -> None:
        await chat.reply_to("tell me more " * 200, 1)
        await chat.reply_to("Say hello.", 2)
        await chat.task.stop_when_done()

    chat, reason = converse(lambda: llama(n_ctx=256, max_tokens=16), drive)
    assert reason is EndReason.ENDED
    [error] = errors_of(chat.task, "llm")
    assert "exceed context window" in error.message and not error.fatal
    assert chat.replies()[0] == "" and chat.replies()[1]


def test_a_model_that_keeps_failing_ends_the_conversation() -> None:
    async def drive(chat: Chat) -> None:
        with failing_calls(chat.llm.model._ctx, "decode", times=1000):
            await chat.reply_to("Hello?", 1)
            await chat.reply_to("Are you there?", 2)
            await wait_for(lambda: chat.task.finished, 30)

    chat, reason = converse(lambda: llama(max_failures_in_a_row=1), drive)
    assert reason is EndReason.ERROR
    errors = errors_of(chat.task, "llm")
    assert errors == chat.task.errors and [e.fatal for e in errors] == [False, True]
    assert "2 failures in a row" in errors[1].message and "giving up" in errors[1].message
