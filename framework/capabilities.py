"""Capabilities: what a processor can do, declared as data instead of guessed from its type."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Flags a processor declares in its ``capabilities`` attribute.

    A class declares what every instance can do; an instance whose settings
    decide (a realtime stage that detects turns only when configured to) sets
    its own in ``__init__``. The pipeline factory reads them to assemble a
    pipeline, and the latency benchmark to tell how a pipeline's reply is made.
    """

    interim_results: bool = False
    """Emits interim transcriptions while the user speaks, before the final one."""
    server_vad: bool = False
    """Detects the user's turns itself: it needs no VAD stage in front of it."""
    tools: bool = False
    """Runs the tool calls a pipeline declares (its ``[[tools]]``)."""
    speech_to_speech: bool = False
    """Hears audio and answers with audio in one stage."""
