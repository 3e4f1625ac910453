"""Chat completions, streamed, on OpenAI or any OpenAI-compatible server.

:class:`OpenAILLM` is a drop-in for the local LLM stage: it answers each
:class:`~framework.frames.llm.LLMMessagesFrame` with ``LLMResponseStartFrame``,
``LLMTextFrame`` per streamed delta and ``LLMResponseEndFrame``, and stops
within a delta on an interruption (the HTTP stream is closed). ``base_url``
points it at llama.cpp's server, Ollama, vLLM or any compatible endpoint.

Tools: the tools of a :class:`~processors.toolset.ToolSet` are offered with
every request (plus declarations arriving in the frame). When the model calls
tools the stage pushes a ``FunctionCallFrame`` per call; calls the ToolSet can
run are run concurrently (each with its timeout, errors coming back to the
model as JSON), each result pushed as a ``FunctionCallResultFrame``, appended to
the shared context when one is given, and the model is asked again, up to
``max_tool_rounds`` times within the same reply. A call no handler here can run
(a tool declared by a realtime client of ``parley serve``) ends the reply: the
``FunctionCallFrame`` is for whoever declared it.

A request that fails (after the SDK's own ``max_retries``), or a stream cut
short, ends the reply where it stopped (``LLMResponseEndFrame`` follows the text
already pushed) and is reported upstream as a non-fatal error naming the stage;
the next messages get a new request. After ``max_failures_in_a_row`` failed
replies in a row the error is fatal.

Metrics per reply: ``ttft`` (seconds from the messages frame to the first
text), ``tokens``, ``tokens_per_s``, and from the usage block, when the server
sends it, ``prompt_tokens``, ``completion_tokens`` and ``cost_usd``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import anyio
from pydantic import Field

from framework.capabilities import Capabilities
from framework.frames.llm import FunctionCallFrame, FunctionCallResultFrame, LLMMessagesFrame
from processors.faults import max_failures_field
from processors.llm.base import LLMProcessor, Reply
from processors.openai_common import OpenAIClientParams, describe_error, make_client
from processors.pricing import CHAT_PRICES, ChatPrice, chat_cost, lookup_price
from processors.toolset import ToolResult, ToolSet

__all__ = ["OpenAILLM", "OpenAILLMParams"]


class OpenAILLMParams(OpenAIClientParams):
    """Settings of :class:`OpenAILLM`."""

    model: str = Field(
        default="gpt-4o-mini", min_length=1, description="Model id (the server's name for it)."
    )
    max_tokens: int | None = Field(
        default=200, ge=1, description="Longest reply in tokens; keep voice replies short."
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="None: default.")
    tool_choice: Literal["auto", "none", "required"] | str = Field(
        default="auto",
        description="auto, none, required, or a tool name to force on the first request of a "
        "reply (later rounds use auto).",
    )
    max_tool_rounds: int = Field(
        default=3, ge=0, le=20, description="Model requests after tool results, per reply."
    )
    stream_usage: bool = Field(
        default=True,
        description="Ask for the usage block at the end of the stream (stream_options); "
        "turn off for servers that reject it.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields for a specific server."
    )
    prices: dict[str, ChatPrice] = Field(
        default_factory=dict, description="Price overrides by model id (USD per 1M tokens)."
    )
    max_failures_in_a_row: int = max_failures_field(3, "the reply ends where it failed")


@dataclass(slots=True)
class ChatReply(Reply):
    """Counters of one reply across its tool rounds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    usage_seen: bool = False


class OpenAILLM(LLMProcessor[ChatReply]):
    """A chat-completions LLM stage; see the module docstring.

    ``tools`` runs tool calls; ``context`` (the shared
    :class:`~processors.llm.context.LLMContext`) records calls and results.
    """

    Params: ClassVar[type[OpenAILLMParams]] = OpenAILLMParams
    capabilities = Capabilities(tools=True)
    model_kind: ClassVar[str] = "client"
    load_is_fatal: ClassVar[bool] = True  # a missing key: the error names the variable

    def __init__(
        self,
        params: OpenAILLMParams | None = None,
        *,
        name: str | None = None,
        tools: ToolSet | None = None,
        context: Any = None,
    ) -> None:
        """Create the stage; the client is made when the pipeline starts."""
        self.params = params or OpenAILLMParams()
        super().__init__(name=name, max_failures_in_a_row=self.params.max_failures_in_a_row)
        self.tools = tools or ToolSet()
        self._llm_context = context
        self._client: Any = None
        self._price: ChatPrice | None = lookup_price(
            CHAT_PRICES, self.params.model, self.params.prices
        )
        self.cost_usd = 0.0
        """Cost of every reply so far (0 for unpriced models)."""

    def load(self) -> None:
        """Create the client (in a thread: importing the SDK takes most of a second)."""
        self._client = make_client(self.params)

    def loaded(self) -> bool:
        """Whether the client is there."""
        return self._client is not None

    async def cleanup(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    def new_reply(self) -> ChatReply:
        """A reply's counters."""
        return ChatReply()

    async def generate(self, frame: LLMMessagesFrame, reply: ChatReply) -> None:
        """Stream the reply, running tool calls between requests."""
        # content null (assistant tool calls) is refused by some servers (llama.cpp): send "".
        messages = [{**m, "content": m.get("content") or ""} for m in frame.messages]
        tools = self._offered_tools(frame.tools)
        for round_index in range(self.params.max_tool_rounds + 1):
            calls = await self._stream(messages, tools, reply, first=round_index == 0)
            if not calls or not await self._run_calls(calls, messages):
                break

    def describe_failure(self, reply: ChatReply, exc: Exception) -> tuple[str, Exception | None]:
        """The deltas received and the HTTP error, said plainly."""
        return f"failed after {reply.tokens} deltas: {describe_error(exc, self.params)}", None

    def reply_metrics(self, reply: ChatReply) -> list[tuple[str, float, str]]:
        """Token usage and cost, when the server sent a usage block."""
        if not reply.usage_seen:
            return []
        return [
            ("prompt_tokens", float(reply.prompt_tokens), "tokens"),
            ("completion_tokens", float(reply.completion_tokens), "tokens"),
            ("cost_usd", reply.cost_usd, "USD"),
        ]

    def metric_extra(self) -> dict[str, Any]:
        """Every sample names the model."""
        return {"model": self.params.model}

    def _offered_tools(self, declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        tools = self.tools.chat_tools()
        mine = set(self.tools.names)
        for tool in declared:
            name = tool.get("function", tool).get("name")
            if name not in mine:
                tools.append(tool if "function" in tool else {"type": "function", "function": tool})
        return tools

    async def _stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        reply: ChatReply,
        *,
        first: bool,
    ) -> list[dict[str, str]]:
        """One request; pushes text as it streams, returns the tool calls asked for."""
        p = self.params
        request: dict[str, Any] = {"model": p.model, "messages": messages, "stream": True}
        if p.max_tokens is not None:
            request["max_tokens"] = p.max_tokens
        if p.temperature is not None:
            request["temperature"] = p.temperature
        if p.stream_usage:
            request["stream_options"] = {"include_usage": True}
        if tools:
            request["tools"] = tools
            choice: Any = p.tool_choice if first else "auto"
            if choice not in ("auto", "none", "required"):
                choice = {"type": "function", "function": {"name": choice}}
            request["tool_choice"] = choice
        if p.extra_body:
            request["extra_body"] = p.extra_body
        calls: dict[int, dict[str, str]] = {}
        stream = await self._client.chat.completions.create(**request)
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    self._add_usage(reply, chunk.usage)
                for choice_delta in chunk.choices or []:
                    delta = choice_delta.delta
                    if delta is None:
                        continue
                    if delta.content:
                        await self.push_text(reply, delta.content)
                    for call in delta.tool_calls or []:
                        slot = calls.setdefault(call.index or 0, {"id": "", "name": "", "args": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function is not None:
                            # The name comes whole (some servers repeat it in every delta).
                            slot["name"] = slot["name"] or call.function.name or ""
                            slot["args"] += call.function.arguments or ""
        return [c for _, c in sorted(calls.items()) if c["name"]]

    def _add_usage(self, reply: ChatReply, usage: Any) -> None:
        reply.usage_seen = True
        reply.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        reply.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        cost = chat_cost(usage, self._price)
        reply.cost_usd += cost
        self.cost_usd += cost

    async def _run_calls(self, calls: list[dict[str, str]], messages: list[dict[str, Any]]) -> bool:
        """Push the calls; run them if all can run here. True: ask the model again."""
        for n, call in enumerate(calls):
            call["id"] = call["id"] or f"call_{time.monotonic_ns()}_{n}"
            await self.push(
                FunctionCallFrame(
                    call_id=call["id"], function_name=call["name"], arguments=_parse(call["args"])
                )
            )
        if not all(self._runnable(c["name"]) for c in calls):
            return False  # declared elsewhere: the FunctionCallFrame is for its owner
        results: list[ToolResult] = [None] * len(calls)  # type: ignore[list-item]

        async def run(n: int, call: dict[str, str]) -> None:
            results[n] = await self.tools.run(call["name"], call["args"], call_id=call["id"])

        async with anyio.create_task_group() as tg:  # concurrent calls, each with its timeout
            for n, call in enumerate(calls):
                tg.start_soon(run, n, call)
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["args"] or "{}"},
                    }
                    for c in calls
                ],
            }
        )
        for call, result in zip(calls, results, strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result.output})
            self._record(call, result)
            await self.push(
                FunctionCallResultFrame(
                    call_id=call["id"],
                    function_name=call["name"],
                    result=result.value if result.ok else {"error": result.error},
                    run_llm=False,
                )
            )
        return True

    def _runnable(self, name: str) -> bool:
        tool = self.tools.get(name)
        return tool is not None and tool.handler is not None

    def _record(self, call: dict[str, str], result: ToolResult) -> None:
        context = self._llm_context
        if context is not None and hasattr(context, "add_tool_call"):
            context.add_tool_call(call["id"], call["name"], call["args"] or "{}")
            context.add_tool_result(call["id"], result.output)


def _parse(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
