"""A scripted language-model stage for the server's function-calling tests.

SmolLM2-135M cannot call tools, so the function-call round trip is driven by
this stand-in at the model boundary: when tools are offered and the last
message is the user's, it calls the first tool with ``{"city": "Paris"}``;
after a tool result it says ``The answer is <result>.``; otherwise it says
``You said: <last user text>.``; on the user text ``fail!`` it raises. It
streams word by word like a real model, ``word_delay_s`` apart (a reply that
lasts, for barge-in tests).
Registered as the ``llm`` backend ``scripted`` by :func:`register`. Every
request is logged in :data:`CALLS` with the time it reached the model.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ConfigDict, Field

from framework import Direction, Processor, handles
from framework.frames import (
    FunctionCallFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
)

CALLS: list[tuple[float, list[dict[str, Any]]]] = []
"""(``time.monotonic()`` on arrival, messages) of every request, in order, process-wide."""


class ScriptedLLMParams(BaseModel):
    """Settings of the scripted model."""

    model_config = ConfigDict(extra="forbid")

    word_delay_s: float = Field(
        default=0.0, ge=0, le=1, description="Pause before each word after the first."
    )


class ScriptedLLM(Processor):
    """Deterministic replies and tool calls (see the module docstring)."""

    Params: ClassVar[type[ScriptedLLMParams]] = ScriptedLLMParams

    def __init__(self, params: ScriptedLLMParams | None = None, *, name: str | None = None):
        super().__init__(name=name, queued=True)
        self.params = params or ScriptedLLMParams()
        self.seen: list[LLMMessagesFrame] = []

    @handles(LLMMessagesFrame)
    async def _messages(self, frame: LLMMessagesFrame, direction: Direction) -> None:
        self.seen.append(frame)
        CALLS.append((time.monotonic(), list(frame.messages)))
        last: dict[str, Any] = frame.messages[-1] if frame.messages else {}
        await self.push(LLMResponseStartFrame())
        if last.get("content") == "fail!":
            raise RuntimeError("scripted failure")
        if frame.tools and last.get("role") == "user":
            name = frame.tools[0]["function"]["name"]
            await self.push(
                FunctionCallFrame(
                    call_id="call_scripted_1", function_name=name, arguments={"city": "Paris"}
                )
            )
        else:
            if last.get("role") == "tool":
                reply = f"The answer is {last.get('content')}."
            else:
                reply = f"You said: {last.get('content') or 'nothing'}."
            for index, word in enumerate(reply.split(" ")):
                if index and self.params.word_delay_s:
                    await anyio.sleep(self.params.word_delay_s)
                await self.push(LLMTextFrame(text=word if index == 0 else " " + word))
        await self.push(LLMResponseEndFrame())


def register() -> None:
    """Make ``[llm] backend = "scripted"`` available."""
    from pipelines import registry

    registry.register("llm", "scripted", f"{__name__}:ScriptedLLM")


def scripted_cascade(word_delay_s: float, *overrides: str) -> Any:
    """The shipped offline cascade with this model as its ``llm`` (registered here)."""
    from tests.pipelines.serve.helpers import cascade_config

    register()
    return cascade_config("llm.backend=scripted", f"llm.word_delay_s={word_delay_s}", *overrides)


@asynccontextmanager
async def scripted_server(word_delay_s: float, **options: Any) -> AsyncIterator[str]:
    """A running server of :func:`scripted_cascade` (a transcript waited for 5 s at most,
    then server ``options``); yields its base URL."""
    from pipelines.serve.app import running_server

    config = scripted_cascade(word_delay_s)
    async with running_server(config, transcript_timeout_s=5.0, **options) as base:
        yield base
