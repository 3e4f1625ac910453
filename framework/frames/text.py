"""Text frames: transcriptions, LLM output and the text handed to speech synthesis."""

from __future__ import annotations

from dataclasses import dataclass

from framework.frames.base import DataFrame

__all__ = [
    "InterimTranscriptionFrame",
    "LLMTextFrame",
    "TTSTextFrame",
    "TextFrame",
    "TranscriptionFrame",
]


@dataclass(slots=True, kw_only=True)
class TextFrame(DataFrame):
    """A piece of text."""

    text: str


@dataclass(slots=True, kw_only=True)
class TranscriptionFrame(TextFrame):
    """A final transcript of the user's speech.

    ``start_ns`` and ``end_ns`` bound the transcribed audio on the task clock when known.
    """

    user_id: str = "user"
    language: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass(slots=True, kw_only=True)
class InterimTranscriptionFrame(TextFrame):
    """A partial transcript that a later interim or final transcript replaces."""

    user_id: str = "user"


@dataclass(slots=True, kw_only=True)
class LLMTextFrame(TextFrame):
    """A streamed chunk (usually a token or a few) of the language model's reply."""


@dataclass(slots=True, kw_only=True)
class TTSTextFrame(TextFrame):
    """Text that was sent to synthesis, pushed in order with the audio it produced."""
