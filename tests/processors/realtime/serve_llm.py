"""A deterministic language model for ``parley serve`` in the realtime tests (the model boundary).

SmolLM2 writes long, unpredictable replies and cannot call tools, so the
server's cascade gets this stand-in instead: real VAD, Whisper and Piper, and
a model that says ``You said: <what the user said>.``, calls the first offered
tool with ``{"city": "Paris"}`` when tools are offered and the user just spoke,
and says ``The weather is <result>.`` after a tool result. Registered as the
``llm`` backend ``realtime_echo``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from framework import Direction, Processor, handles
from framework.frames import (
    FunctionCallFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
)


class EchoParams(BaseModel):
    """No settings."""

    model_config = ConfigDict(extra="forbid")


class EchoLLM(Processor):
    """See the module docstring."""

    Params: ClassVar[type[EchoParams]] = EchoParams

    def __init__(self, params: EchoParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name, queued=True)

    @handles(LLMMessagesFrame)
    async def _messages(self, frame: LLMMessagesFrame, direction: Direction) -> None:
        last: dict[str, Any] = frame.messages[-1] if frame.messages else {}
        await self.push(LLMResponseStartFrame())
        if frame.tools and last.get("role") == "user":
            tool = frame.tools[0].get("function", frame.tools[0])
            await self.push(
                FunctionCallFrame(
                    call_id="call_echo_1", function_name=tool["name"], arguments={"city": "Paris"}
                )
            )
        else:
            if last.get("role") == "tool":
                reply = f"The weather is {last.get('content')}."
            else:
                reply = f"You said: {str(last.get('content') or 'nothing').strip()}"
            for index, word in enumerate(reply.split(" ")):
                await self.push(LLMTextFrame(text=word if index == 0 else " " + word))
        await self.push(LLMResponseEndFrame())


def register() -> None:
    """Make ``[llm] backend = "realtime_echo"`` available."""
    from pipelines import registry

    registry.register("llm", "realtime_echo", f"{__name__}:EchoLLM")
