"""Settings of the OpenAI Realtime processor and the GA ``session.update`` they produce."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from processors.pricing import REALTIME_PRICES, RealtimePrice

__all__ = [
    "LocalTurns",
    "OpenAIRealtimeParams",
    "SemanticVADTurns",
    "ServerVADTurns",
    "TurnDetection",
    "Voice",
    "session_config",
]

Voice = Literal[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"
]
"""The built-in voices of the GA interface (SDK ``RealtimeAudioConfigOutputParam.Voice``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalTurns(_Strict):
    """The pipeline's own VAD decides turns: the processor commits the audio of each
    turn and asks for a response (``turn_detection: null`` on the server)."""

    type: Literal["local"] = "local"
    prefix_padding_ms: int = Field(
        default=300,
        ge=0,
        le=2000,
        description="Audio kept from before the VAD's speech start and sent with the turn.",
    )


class ServerVADTurns(_Strict):
    """The server's energy VAD decides turns (``server_vad``)."""

    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Activation threshold.")
    prefix_padding_ms: int = Field(default=300, ge=0, description="Audio kept before speech.")
    silence_duration_ms: int = Field(
        default=500, ge=0, description="Silence that ends a turn (shorter answers sooner)."
    )
    idle_timeout_ms: int | None = Field(
        default=None, ge=0, description="Prompt the user after this long without speech."
    )
    create_response: bool = Field(default=True, description="Answer each turn automatically.")
    interrupt_response: bool = Field(
        default=True, description="The server cancels its response when the user speaks."
    )


class SemanticVADTurns(_Strict):
    """A server model decides when the user has finished (``semantic_vad``)."""

    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = Field(
        default="auto", description="How soon to answer: low waits up to 8 s, high 2 s."
    )
    create_response: bool = Field(default=True, description="Answer each turn automatically.")
    interrupt_response: bool = Field(
        default=True, description="The server cancels its response when the user speaks."
    )


TurnDetection = Annotated[
    LocalTurns | ServerVADTurns | SemanticVADTurns, Field(discriminator="type")
]


class OpenAIRealtimeParams(_Strict):
    """Settings of :class:`~processors.realtime.openai.OpenAIRealtime`.

    The API key is read from the environment variable named by ``api_key_env``
    when the processor starts; it is never part of the settings.
    """

    model: str = Field(
        default="gpt-realtime",
        min_length=1,
        description="Realtime model id, e.g. gpt-realtime, gpt-realtime-mini, gpt-realtime-2.",
    )
    voice: Voice = Field(default="marin", description="Output voice (marin and cedar sound best).")
    speed: float = Field(default=1.0, ge=0.25, le=1.5, description="Speech speed multiplier.")
    instructions: str = Field(
        default="",
        description="System instructions; empty uses the shared context's system prompt, if any.",
    )
    turn_detection: TurnDetection = Field(
        default_factory=ServerVADTurns,
        description="Who decides turns: local, server_vad, semantic_vad.",
    )
    transcription_model: str | None = Field(
        default="gpt-4o-mini-transcribe",
        description="Model transcribing the user's audio (TranscriptionFrame); None turns it off.",
    )
    transcription_language: str | None = Field(default=None, description="e.g. 'en'.")
    noise_reduction: Literal["near_field", "far_field", "none"] = Field(
        default="none", description="Input noise reduction: near_field (headset), far_field."
    )
    tool_choice: Literal["auto", "none", "required"] | str = Field(
        default="auto", description="auto, none, required, or the name of one tool to force."
    )
    max_output_tokens: int | Literal["inf"] = Field(
        default="inf", description="Per-response output cap (1-4096) or 'inf'."
    )
    base_url: str | None = Field(
        default=None, description="HTTP base URL (default: the SDK's, OPENAI_BASE_URL)."
    )
    websocket_base_url: str | None = Field(
        default=None,
        description="WebSocket base URL, e.g. ws://127.0.0.1:8765/v1 ('/realtime' is appended).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY", min_length=1, description="Environment variable holding the key."
    )
    append_ms: int = Field(
        default=10,
        ge=10,
        le=500,
        description=(
            "Input audio is sent in appends of at least this long (the server's VAD hears "
            "the end of speech up to this much later); 10 sends each input frame at once."
        ),
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="WebSocket open timeout.")
    reconnect_attempts: int = Field(
        default=5, ge=0, le=100, description="Reconnect attempts after a drop (0: never)."
    )
    reconnect_initial_delay_s: float = Field(default=0.5, ge=0, description="First back-off.")
    reconnect_max_delay_s: float = Field(default=8.0, ge=0, description="Longest back-off.")
    reconnect_jitter: float = Field(
        default=0.25, ge=0, le=1, description="Random fraction taken off each back-off delay."
    )
    resume_after_reconnect: bool = Field(
        default=True,
        description="Ask for a new response when a drop cut the last one short.",
    )
    replay_max_items: int = Field(
        default=100, ge=0, description="Conversation items replayed into a new server session."
    )
    prices: dict[str, RealtimePrice] = Field(
        default_factory=dict,
        description="Price overrides by model id (USD per 1M tokens); see processors.pricing.",
    )

    @field_validator("max_output_tokens")
    @classmethod
    def _check_tokens(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 4096:
            raise ValueError("max_output_tokens must be between 1 and 4096, or 'inf'")
        return value

    @property
    def server_turns(self) -> bool:
        """True when the server detects turns (server_vad or semantic_vad)."""
        return self.turn_detection.type != "local"

    def price(self) -> RealtimePrice | None:
        """The price table entry of :attr:`model` (overrides first).

        A server of our own (``base_url`` or ``websocket_base_url`` set) costs nothing
        unless ``prices`` says otherwise: its usage is counted, not priced as OpenAI's.
        """
        from processors.pricing import lookup_price

        if (self.base_url or self.websocket_base_url) and not self.prices:
            return None
        return lookup_price(REALTIME_PRICES, self.model, self.prices)


def _turn_detection(turns: LocalTurns | ServerVADTurns | SemanticVADTurns) -> dict[str, Any] | None:
    if isinstance(turns, LocalTurns):
        return None
    # Send every field: a partial object has been reported to change VAD sensitivity.
    return turns.model_dump(mode="json")


def session_config(
    params: OpenAIRealtimeParams, *, instructions: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The full GA ``session`` object for ``session.update`` (``type: realtime`` included)."""
    audio_in: dict[str, Any] = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "turn_detection": _turn_detection(params.turn_detection),
        "noise_reduction": (
            None if params.noise_reduction == "none" else {"type": params.noise_reduction}
        ),
        "transcription": None,
    }
    if params.transcription_model:
        transcription: dict[str, Any] = {"model": params.transcription_model}
        if params.transcription_language:
            transcription["language"] = params.transcription_language
        audio_in["transcription"] = transcription
    tool_choice: Any = params.tool_choice
    if tool_choice not in ("auto", "none", "required"):
        tool_choice = {"type": "function", "name": tool_choice}
    return {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {
            "input": audio_in,
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": params.voice,
                "speed": params.speed,
            },
        },
        "tools": tools,
        "tool_choice": tool_choice,
        "max_output_tokens": params.max_output_tokens,
    }
