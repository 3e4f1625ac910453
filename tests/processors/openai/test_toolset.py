"""ToolSet: declarations rendered two ways, calls that never raise, slow tools in the background."""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any, Literal

import anyio
import pytest
from pydantic import Field

from processors.toolset import Tool, ToolResult, ToolSet

pytestmark = pytest.mark.anyio


def lookup(city: str) -> dict[str, Any]:
    """Imported by name from a declaration."""
    return {"city": city, "thread": threading.current_thread().name}


def make_tools() -> ToolSet:
    tools = ToolSet(timeout_s=2.0)

    @tools.tool()
    async def get_weather(
        city: Annotated[str, Field(description="City name")], unit: Literal["C", "F"] = "C"
    ) -> dict[str, Any]:
        """Current weather in a city.

        Longer text that is not part of the description.
        """
        return {"city": city, "temp": 21, "unit": unit}

    @tools.tool(timeout_s=0.1)
    def slow_sync(seconds: float) -> str:
        """Blocks a thread."""
        time.sleep(seconds)
        return "late"

    @tools.tool(timeout_s=0.1)
    async def slow_async(seconds: float) -> str:
        """Sleeps."""
        await anyio.sleep(seconds)
        return "late"

    @tools.tool()
    def boom() -> None:
        """Fails."""
        raise RuntimeError("the tool broke")

    return tools


def test_declarations_render_for_chat_and_realtime() -> None:
    tools = make_tools()
    chat = tools.chat_tools()[0]
    realtime = tools.realtime_tools()[0]
    assert chat["type"] == "function" and chat["function"]["name"] == "get_weather"
    assert chat["function"]["description"] == "Current weather in a city."
    params = chat["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "City name"}
    assert params["properties"]["unit"]["enum"] == ["C", "F"]
    assert realtime == {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": params,
    }
    assert tools.names == ["get_weather", "slow_sync", "slow_async", "boom"]
    assert "boom" in tools and len(tools) == 4


async def test_calls_succeed_or_become_json_errors() -> None:
    tools = make_tools()
    ok = await tools.run("get_weather", '{"city": "Oslo"}', call_id="c1")
    assert ok.ok and ok.call_id == "c1"
    assert json.loads(ok.output) == {"city": "Oslo", "temp": 21, "unit": "C"}

    cases = {
        ("nope", "{}"): "unknown tool 'nope'",
        ("get_weather", "{not json"): "not valid JSON",
        ("get_weather", "[1, 2]"): "expected a JSON object",
        ("get_weather", "{}"): "city: Field required",
        ("get_weather", '{"city": "Oslo", "unit": "K"}'): "unit: Input should be 'C' or 'F'",
        ("boom", ""): "boom failed: RuntimeError: the tool broke",
    }
    for (name, args), message in cases.items():
        result = await tools.run(name, args)
        assert not result.ok, (name, args)
        assert message in result.error
        assert json.loads(result.output) == {"error": result.error}


async def test_timeouts_do_not_wait_for_the_tool() -> None:
    tools = make_tools()
    for name in ("slow_sync", "slow_async"):
        started = time.perf_counter()
        result = await tools.run(name, {"seconds": 2})
        assert not result.ok and "timed out after 0.1 s" in result.error
        assert time.perf_counter() - started < 1.5  # abandoned, not awaited


async def test_plain_functions_run_in_a_worker_thread() -> None:
    tools = ToolSet.from_declarations(
        [
            {
                "name": "lookup",
                "description": "Look up.",
                "handler": f"{__name__}:lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ]
    )
    result = await tools.run("lookup", {"city": "Rome"})
    assert result.ok and result.value["city"] == "Rome"
    assert result.value["thread"] != threading.main_thread().name
    missing = await tools.run("lookup", {})
    assert "missing required argument(s): city" in missing.error


async def test_background_calls_let_the_conversation_go_on() -> None:
    tools = ToolSet()
    order: list[str] = []

    @tools.tool()
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.3)
        return "slow done"

    @tools.tool()
    async def fast() -> str:
        """Fast."""
        return "fast done"

    results: list[ToolResult] = []

    async def collect(result: ToolResult) -> None:
        order.append(result.name)
        results.append(result)

    async with anyio.create_task_group() as tg:
        task = tools.start(tg, "slow", "{}", call_id="s", on_result=collect)
        tools.start(tg, "fast", "{}", call_id="f", on_result=collect)
        order.append("conversation goes on")
        assert not task.done
    assert order == ["conversation goes on", "fast", "slow"]
    assert [r.output for r in results] == ["fast done", "slow done"]
    assert task.done and task.result is not None and task.result.elapsed_s >= 0.25


async def test_a_cancelled_call_reports_nothing() -> None:
    tools = ToolSet()

    @tools.tool()
    async def forever() -> str:
        """Never ends."""
        await anyio.sleep(60)
        return "never"

    seen: list[ToolResult] = []

    async def collect(result: ToolResult) -> None:
        seen.append(result)

    async with anyio.create_task_group() as tg:
        task = tools.start(tg, "forever", None, call_id="x", on_result=collect)
        await anyio.sleep(0.05)
        task.cancel()
    assert seen == [] and task.done


def test_declarations_are_validated() -> None:
    tools = ToolSet()
    tools.add(None, name="declared_only", description="No handler here.")
    with pytest.raises(ValueError, match="declared twice"):
        tools.add(None, name="declared_only")
    with pytest.raises(ValueError, match="tool name 'bad name'"):
        Tool(name="bad name")
    with pytest.raises(ValueError, match="type 'object'"):
        Tool(name="x", parameters={"type": "string"})
    with pytest.raises(ValueError, match="cannot import tool handler"):
        ToolSet.from_declarations([{"name": "x", "handler": "no.such.module:fn"}])
    chat_shaped = ToolSet.from_declarations(
        [
            {
                "type": "function",
                "function": {
                    "name": "y",
                    "description": "Y.",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ]
    )
    assert chat_shaped.realtime_tools()[0]["name"] == "y"


async def test_a_declared_tool_without_handler_answers_with_an_error() -> None:
    tools = ToolSet()
    tools.add(None, name="remote", description="Runs elsewhere.")
    result = await tools.run("remote", "{}")
    assert not result.ok and "has no handler" in result.error
