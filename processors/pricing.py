"""Price tables and cost arithmetic for the OpenAI backends (USD).

Every table maps a model id to a pydantic price model, so a pipeline file can
override any figure (``prices = {...}`` in a backend's params). Dated snapshots
(``gpt-realtime-2025-08-28``) fall back to their base id.

Where the figures come from (checked 2026; prices change, so treat them as
defaults and override them in config when you bill for real):

* Realtime: the project's protocol reference, ``reference/openai-realtime.md``
  section 7.3 (OpenAI model pages). ``gpt-realtime-mini``'s cached and audio
  figures are those of ``gpt-realtime-2.1-mini``, assumed identical there.
* Transcription: the OpenAI model page of ``gpt-4o-transcribe`` ($2.50 audio in,
  $10 text out per 1M tokens); ``gpt-4o-mini-transcribe`` $1.25 / $5 (AI-gateway
  listing); ``whisper-1`` $0.006 per minute.
* Speech: the OpenAI model pages: ``tts-1`` $15 and ``tts-1-hd`` $30 per 1M
  characters; ``gpt-4o-mini-tts`` $0.60 per 1M text tokens in and $12 per 1M
  audio tokens out. The speech endpoint reports no usage, so its cost is an
  *estimate* (4 characters per text token, 20 audio tokens per second).
* Chat: ``gpt-4o``, ``gpt-4o-mini``, ``gpt-4.1`` family, from secondary listings
  of OpenAI's pricing page: **configurable defaults, not verified at the source**.
  Unknown models (a local llama.cpp server) cost nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CHAT_PRICES",
    "REALTIME_PRICES",
    "SPEECH_PRICES",
    "TRANSCRIPTION_PRICES",
    "ChatPrice",
    "RealtimePrice",
    "RealtimeUsage",
    "SpeechPrice",
    "TranscriptionPrice",
    "chat_cost",
    "lookup_price",
    "speech_cost",
    "transcription_cost",
]

MILLION = 1_000_000
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
P = TypeVar("P", bound=BaseModel)


class _Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(default="configured", description="Where the figures come from.")


class RealtimePrice(_Price):
    """Realtime model prices in USD per 1M tokens (cached tokens are a subset of input)."""

    text_in: float = Field(ge=0, description="Uncached text input tokens.")
    text_cached: float = Field(ge=0, description="Cached text input tokens.")
    text_out: float = Field(ge=0, description="Text output tokens.")
    audio_in: float = Field(ge=0, description="Uncached audio input tokens.")
    audio_cached: float = Field(ge=0, description="Cached audio input tokens.")
    audio_out: float = Field(ge=0, description="Audio output tokens.")


class ChatPrice(_Price):
    """Chat-completions prices in USD per 1M tokens."""

    input: float = Field(ge=0, description="Uncached prompt tokens.")
    cached_input: float = Field(ge=0, description="Cached prompt tokens.")
    output: float = Field(ge=0, description="Completion tokens.")


class TranscriptionPrice(_Price):
    """Transcription prices: per 1M tokens when the API reports tokens, else per minute."""

    audio_in: float = Field(default=0.0, ge=0, description="Audio input tokens, per 1M.")
    text_in: float = Field(default=0.0, ge=0, description="Text (prompt) input tokens, per 1M.")
    text_out: float = Field(default=0.0, ge=0, description="Text output tokens, per 1M.")
    per_minute: float = Field(default=0.0, ge=0, description="Per minute of audio.")


class SpeechPrice(_Price):
    """Speech-synthesis prices: per 1M characters, or per 1M text/audio tokens."""

    per_million_chars: float = Field(default=0.0, ge=0, description="Per 1M input characters.")
    text_in: float = Field(default=0.0, ge=0, description="Text input tokens, per 1M.")
    audio_out: float = Field(default=0.0, ge=0, description="Audio output tokens, per 1M.")


_REF = "reference/openai-realtime.md §7.3"
_FULL = {"text_in": 4.0, "text_cached": 0.40, "audio_in": 32.0, "audio_cached": 0.40}
_MINI = {"text_in": 0.60, "text_cached": 0.06, "text_out": 2.40}
_MINI_AUDIO = {"audio_in": 10.0, "audio_cached": 0.30, "audio_out": 20.0}

REALTIME_PRICES: dict[str, RealtimePrice] = {
    "gpt-realtime": RealtimePrice(**_FULL, text_out=16.0, audio_out=64.0, source=_REF),
    "gpt-realtime-1.5": RealtimePrice(**_FULL, text_out=16.0, audio_out=64.0, source=_REF),
    "gpt-realtime-2": RealtimePrice(**_FULL, text_out=24.0, audio_out=64.0, source=_REF),
    "gpt-realtime-mini": RealtimePrice(
        **_MINI, **_MINI_AUDIO, source=f"{_REF} (cached/audio assumed = 2.1-mini)"
    ),
    "gpt-realtime-2.1-mini": RealtimePrice(**_MINI, **_MINI_AUDIO, source=_REF),
}
"""Realtime prices by model id (USD per 1M tokens)."""

_UNVERIFIED = "secondary listings of OpenAI pricing; configurable default"
CHAT_PRICES: dict[str, ChatPrice] = {
    "gpt-4o": ChatPrice(input=2.50, cached_input=1.25, output=10.0, source=_UNVERIFIED),
    "gpt-4o-mini": ChatPrice(input=0.15, cached_input=0.075, output=0.60, source=_UNVERIFIED),
    "gpt-4.1": ChatPrice(input=2.00, cached_input=0.50, output=8.0, source=_UNVERIFIED),
    "gpt-4.1-mini": ChatPrice(input=0.40, cached_input=0.10, output=1.60, source=_UNVERIFIED),
    "gpt-4.1-nano": ChatPrice(input=0.10, cached_input=0.025, output=0.40, source=_UNVERIFIED),
}
"""Chat-completions prices by model id (USD per 1M tokens); unknown models cost 0."""

TRANSCRIPTION_PRICES: dict[str, TranscriptionPrice] = {
    "gpt-4o-transcribe": TranscriptionPrice(
        audio_in=2.50,
        text_in=2.50,
        text_out=10.0,
        per_minute=0.006,
        source="OpenAI model page (tokens); per-minute figure is an estimate",
    ),
    "gpt-4o-mini-transcribe": TranscriptionPrice(
        audio_in=1.25,
        text_in=1.25,
        text_out=5.0,
        per_minute=0.003,
        source="AI-gateway listing (tokens); per-minute figure is an estimate",
    ),
    "whisper-1": TranscriptionPrice(per_minute=0.006, source="OpenAI pricing, per minute"),
}
"""Transcription prices by model id."""

SPEECH_PRICES: dict[str, SpeechPrice] = {
    "tts-1": SpeechPrice(per_million_chars=15.0, source="OpenAI model page"),
    "tts-1-hd": SpeechPrice(per_million_chars=30.0, source="OpenAI model page"),
    "gpt-4o-mini-tts": SpeechPrice(text_in=0.60, audio_out=12.0, source="OpenAI model page"),
}
"""Speech-synthesis prices by model id."""


def lookup_price(
    table: Mapping[str, P], model: str, overrides: Mapping[str, P] | None = None
) -> P | None:
    """The price of ``model`` from ``overrides`` then ``table``; a dated snapshot falls back.

    ``gpt-realtime-2025-08-28`` finds ``gpt-realtime``; None when nothing matches.
    """
    for candidate in (model, _DATED.sub("", model)):
        if overrides and candidate in overrides:
            return overrides[candidate]
        if candidate in table:
            return table[candidate]
    return None


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _get(data: Any, key: str) -> Any:
    if data is None:
        return None
    if isinstance(data, Mapping):
        return data.get(key)
    return getattr(data, key, None)


@dataclass(slots=True)
class RealtimeUsage:
    """Token counts of realtime responses, by kind, with their cost; add them up with ``+``.

    ``text_in``/``audio_in`` include the cached tokens, as the API reports them.
    """

    text_in: int = 0
    audio_in: int = 0
    cached_text_in: int = 0
    cached_audio_in: int = 0
    text_out: int = 0
    audio_out: int = 0
    cost_usd: float = 0.0
    responses: int = 0

    @classmethod
    def from_usage(cls, usage: Any, price: RealtimePrice | None) -> RealtimeUsage:
        """Read a ``response.done`` usage block (dict or SDK model) and price it."""
        inp = _get(usage, "input_token_details")
        cached = _get(inp, "cached_tokens_details")
        out = _get(usage, "output_token_details")
        found = cls(
            text_in=_int(_get(inp, "text_tokens")),
            audio_in=_int(_get(inp, "audio_tokens")),
            cached_text_in=_int(_get(cached, "text_tokens")),
            cached_audio_in=_int(_get(cached, "audio_tokens")),
            text_out=_int(_get(out, "text_tokens")),
            audio_out=_int(_get(out, "audio_tokens")),
            responses=1,
        )
        found.cached_text_in = min(found.cached_text_in, found.text_in)
        found.cached_audio_in = min(found.cached_audio_in, found.audio_in)
        found.cost_usd = found.cost(price) if price is not None else 0.0
        return found

    @property
    def input_tokens(self) -> int:
        """All input tokens (cached included)."""
        return self.text_in + self.audio_in

    @property
    def output_tokens(self) -> int:
        """All output tokens."""
        return self.text_out + self.audio_out

    def cost(self, price: RealtimePrice) -> float:
        """The cost of these tokens at ``price`` (section 7.1 of the realtime reference)."""
        total = (
            (self.text_in - self.cached_text_in) * price.text_in
            + self.cached_text_in * price.text_cached
            + (self.audio_in - self.cached_audio_in) * price.audio_in
            + self.cached_audio_in * price.audio_cached
            + self.text_out * price.text_out
            + self.audio_out * price.audio_out
        )
        return total / MILLION

    def __add__(self, other: RealtimeUsage) -> RealtimeUsage:
        return RealtimeUsage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def chat_cost(usage: Any, price: ChatPrice | None) -> float:
    """Cost of a chat-completions ``usage`` block (dict or SDK model); 0 without a price."""
    if price is None or usage is None:
        return 0.0
    prompt = _int(_get(usage, "prompt_tokens"))
    cached = min(prompt, _int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens")))
    completion = _int(_get(usage, "completion_tokens"))
    total = (prompt - cached) * price.input + cached * price.cached_input
    return (total + completion * price.output) / MILLION


def transcription_cost(
    usage: Any, price: TranscriptionPrice | None, *, audio_s: float = 0.0
) -> float:
    """Cost of a transcription: from its token ``usage`` if given, else per minute of audio.

    ``usage`` is the API's usage block: ``{"type": "tokens", ...}`` or
    ``{"type": "duration", "seconds": ...}``; None falls back to ``audio_s``.
    """
    if price is None:
        return 0.0
    if _get(usage, "type") == "tokens":
        details = _get(usage, "input_token_details")
        audio = _int(_get(details, "audio_tokens"))
        text = _int(_get(details, "text_tokens"))
        if details is None:
            audio = _int(_get(usage, "input_tokens"))
        output = _int(_get(usage, "output_tokens"))
        return (audio * price.audio_in + text * price.text_in + output * price.text_out) / MILLION
    seconds = _get(usage, "seconds")
    minutes = (float(seconds) if seconds is not None else audio_s) / 60.0
    return max(0.0, minutes) * price.per_minute


def speech_cost(price: SpeechPrice | None, *, chars: int, audio_s: float) -> float:
    """Estimated cost of synthesising ``chars`` characters into ``audio_s`` seconds of audio.

    Per-character models are exact; token-priced models are estimated at 4
    characters per text token and 20 audio tokens per second.
    """
    if price is None:
        return 0.0
    by_chars = chars * price.per_million_chars
    by_tokens = (chars / 4.0) * price.text_in + audio_s * 20.0 * price.audio_out
    return (by_chars + by_tokens) / MILLION
