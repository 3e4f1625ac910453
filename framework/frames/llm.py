"""Language-model frames: response boundaries, context updates and function calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framework.frames.base import ControlFrame, DataFrame, Uninterruptible

__all__ = [
    "FunctionCallFrame",
    "FunctionCallResultFrame",
    "LLMMessagesFrame",
    "LLMResponseEndFrame",
    "LLMResponseStartFrame",
    "LLMRunFrame",
]


@dataclass(slots=True, kw_only=True)
class LLMResponseStartFrame(ControlFrame):
    """The language model began a reply."""


@dataclass(slots=True, kw_only=True)
class LLMResponseEndFrame(ControlFrame):
    """The language model finished a reply."""


@dataclass(slots=True, kw_only=True)
class LLMMessagesFrame(DataFrame):
    """A full chat context (OpenAI-style message dicts) for the language model to answer."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class LLMRunFrame(ControlFrame):
    """Ask the context aggregator to run the language model on the context as it stands."""


@dataclass(slots=True, kw_only=True)
class FunctionCallFrame(DataFrame):
    """The model asked for a tool call. ``arguments`` is the parsed JSON object."""

    call_id: str
    function_name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class FunctionCallResultFrame(Uninterruptible, DataFrame):
    """The result of a tool call. Uninterruptible: a result must reach the context."""

    call_id: str
    function_name: str
    result: Any = None
    run_llm: bool = True
