"""OpenAILLM against llama-cpp-python's OpenAI-compatible server running SmolLM2 on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from framework import Direction, Frame, Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import (
    FunctionCallFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMMessagesFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
)
from processors.llm.context import LLMContext
from processors.llm.openai import OpenAILLM, OpenAILLMParams
from processors.toolset import ToolSet
from tests.processors.openai.conftest import KEY_ENV

pytestmark = pytest.mark.anyio


class Sink(Processor):
    def __init__(self) -> None:
        super().__init__(name="sink")
        self.seen: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if direction is Direction.DOWNSTREAM:
            self.seen.append(frame)
        await self.push(frame, direction)

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.seen if isinstance(f, kind)]


async def run(
    llm: OpenAILLM, frames: list[Frame], until: int = 1, within: float = 60
) -> tuple[Sink, PipelineTask]:
    sink = Sink()
    task = PipelineTask(Pipeline([llm, sink]), TaskParams(name="llm-test"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        for frame in frames:
            await task.queue_frame(frame)
        with anyio.fail_after(within):
            while len(sink.of(LLMResponseEndFrame)) < until:
                await anyio.sleep(0.01)
        await task.cancel()
    return sink, task


def params(url: str, **extra: Any) -> OpenAILLMParams:
    settings: dict[str, Any] = {
        "model": "smollm2",
        "base_url": url,
        "api_key_env": KEY_ENV,
        "max_tokens": 24,
        "temperature": 0.0,
        **extra,
    }
    return OpenAILLMParams(**settings)


async def test_a_reply_streams_as_the_local_llm_does(llama_server: str) -> None:
    llm = OpenAILLM(params(llama_server), name="llm")
    messages = [
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Say hello to Ada."},
    ]
    sink, task = await run(llm, [LLMMessagesFrame(messages=messages)])
    kinds = [
        type(f)
        for f in sink.seen
        if isinstance(f, (LLMResponseStartFrame, LLMTextFrame, LLMResponseEndFrame))
    ]
    assert kinds[0] is LLMResponseStartFrame and kinds[-1] is LLMResponseEndFrame
    text = "".join(f.text for f in sink.of(LLMTextFrame))
    assert text.strip() and len(sink.of(LLMTextFrame)) > 3  # streamed, not in one piece
    names = {s.name for m in sink.of(MetricsFrame) for s in m.samples}
    assert {"ttft", "tokens", "tokens_per_s"} <= names
    assert task.errors == [] and llm.cost_usd == 0.0  # a local model costs nothing


async def test_a_tool_round_trip_with_a_forced_call(llama_server: str) -> None:
    tools = ToolSet()
    seen: list[str] = []

    @tools.tool()
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather in a city."""
        seen.append(city)
        await anyio.sleep(0.1)
        return {"city": city, "sky": "sunny", "temp_c": 21}

    context = LLMContext(system_prompt="You are brief.")
    context.add_user_message("What is the weather in Paris?")
    llm = OpenAILLM(
        params(llama_server, tool_choice="get_weather"), name="llm", tools=tools, context=context
    )
    sink, task = await run(llm, [context.messages_frame()])
    call = sink.of(FunctionCallFrame)[0]
    assert call.function_name == "get_weather" and "city" in call.arguments
    assert seen == [call.arguments["city"]]
    result = sink.of(FunctionCallResultFrame)[0]
    assert result.call_id == call.call_id and result.result["sky"] == "sunny"
    assert "".join(f.text for f in sink.of(LLMTextFrame)).strip()  # the model went on after it
    assert len(sink.of(LLMResponseStartFrame)) == 1  # one reply across the tool round
    roles = [m["role"] for m in context.messages]
    assert roles == ["user", "assistant", "tool"]
    assert context.messages[1]["tool_calls"][0]["id"] == call.call_id
    assert task.errors == []


async def test_a_client_declared_tool_ends_the_reply_with_the_call(llama_server: str) -> None:
    declared = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up.",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                },
            },
        }
    ]
    llm = OpenAILLM(params(llama_server, tool_choice="lookup"), name="llm")
    frame = LLMMessagesFrame(messages=[{"role": "user", "content": "Find cats"}], tools=declared)
    sink, task = await run(llm, [frame])
    assert sink.of(FunctionCallFrame)[0].function_name == "lookup"
    assert sink.of(FunctionCallResultFrame) == []  # for the client that declared it
    assert task.errors == []


async def test_an_interruption_stops_the_stream(llama_server: str) -> None:
    llm = OpenAILLM(params(llama_server, max_tokens=400), name="llm")
    sink = Sink()
    task = PipelineTask(Pipeline([llm, sink]), TaskParams(name="llm-test"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frame(
            LLMMessagesFrame(
                messages=[{"role": "user", "content": "Write a very long story about a dragon."}]
            )
        )
        with anyio.fail_after(60):
            while len(sink.of(LLMTextFrame)) < 3:
                await anyio.sleep(0.005)
        await task.queue_frame(InterruptionFrame())
        count = len(sink.of(LLMTextFrame))
        await anyio.sleep(0.5)
        after = len(sink.of(LLMTextFrame))
        await task.cancel()
    assert after <= count + 1  # at most a delta already on its way
    assert sink.of(LLMResponseEndFrame) == []


async def test_server_errors_are_reported_and_the_reply_ends(llama_server: str) -> None:
    llm = OpenAILLM(params(llama_server.replace("/v1", "/nope"), max_retries=0), name="llm")
    sink, task = await run(llm, [LLMMessagesFrame(messages=[{"role": "user", "content": "Hi"}])])
    assert "HTTP 404" in task.errors[0].message and not task.errors[0].fatal
    assert len(sink.of(LLMResponseEndFrame)) == 1
