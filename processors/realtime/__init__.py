"""Speech-to-speech processors: one stage that hears audio and answers with audio.

``processors.realtime.openai.OpenAIRealtime`` speaks the OpenAI Realtime API (GA)
through the official SDK, to OpenAI or to any server speaking the protocol
(such as ``parley serve``). Importing this package imports no SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from processors.realtime.frames import RealtimeConnectionFrame
    from processors.realtime.openai import OpenAIRealtime, OpenAIRealtimeParams

__all__ = ["OpenAIRealtime", "OpenAIRealtimeParams", "RealtimeConnectionFrame"]

_LAZY = {
    "OpenAIRealtime": "processors.realtime.openai",
    "OpenAIRealtimeParams": "processors.realtime._params",
    "RealtimeConnectionFrame": "processors.realtime.frames",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'processors.realtime' has no attribute {name!r}")
