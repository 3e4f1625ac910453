"""The GA session configuration: defaults, strict validation and ``session.update`` merging.

:class:`SessionConfig` mirrors OpenAI's GA session object (``type: "realtime"``,
``audio.input`` / ``audio.output``, ``output_modalities``, ``tools``...). Unknown
fields and wrong values are refused with the parameter named. A
``session.update`` changes only the fields present (:func:`merge_session`):
``audio``, ``audio.input``, ``audio.output``, ``noise_reduction``,
``transcription`` and a ``turn_detection`` of the same type are merged field by
field; every other value (formats, tools, a turn detection of another type...)
replaces the old one, and ``null`` turns a nullable setting off.

:class:`ResponseParams` validates the optional ``response`` object of
``response.create`` (per-response overrides).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.serve.protocol import ProtocolError, register_tags, validation_error
from processors.realtime._params import Voice as BuiltinVoice

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "AudioFormat",
    "FunctionTool",
    "ResponseParams",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "default_session",
    "merge_session",
]

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer in one or two short, plain sentences."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PCMFormat(_Model):
    """``{"type": "audio/pcm", "rate": 24000}``: 16-bit little-endian mono at 24 kHz."""

    type: Literal["audio/pcm"]
    rate: Literal[24000] = 24000


class PCMUFormat(_Model):
    """``{"type": "audio/pcmu"}``: G.711 mu-law at 8 kHz."""

    type: Literal["audio/pcmu"]


class PCMAFormat(_Model):
    """``{"type": "audio/pcma"}``: G.711 A-law at 8 kHz."""

    type: Literal["audio/pcma"]


AudioFormat = Annotated[PCMFormat | PCMUFormat | PCMAFormat, Field(discriminator="type")]


class NoiseReduction(_Model):
    """Accepted and reported; this server applies no noise reduction (Silero ignores noise)."""

    type: Literal["near_field", "far_field"]
    strength: float = Field(default=1.0, ge=0.0, le=1.0)


class Transcription(_Model):
    """Turns on transcription events; the pipeline's own STT transcribes whatever the model."""

    model: str | None = "whisper-1"
    language: str | None = None
    languages: list[str] | None = None
    prompt: str | None = None
    keywords: list[str] | None = None
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class ServerVad(_Model):
    """``server_vad``: Silero VAD on the input audio."""

    type: Literal["server_vad"]
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(default=300, ge=0, le=10_000)
    silence_duration_ms: int = Field(default=500, ge=0, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = Field(default=None, ge=1, le=600_000)


class SemanticVad(_Model):
    """``semantic_vad``: the VAD plus the Smart Turn end-of-turn model.

    The eagerness sets how the model's verdict is used: see
    :data:`pipelines.serve.turn_settings.EAGERNESS`.
    """

    type: Literal["semantic_vad"]
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class SessionInputAudio(_Model):
    """``audio.input``."""

    format: AudioFormat = Field(default_factory=lambda: PCMFormat(type="audio/pcm"))
    noise_reduction: NoiseReduction | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = Field(
        default_factory=lambda: ServerVad(type="server_vad")
    )


class VoiceId(_Model):
    """A custom voice reference; accepted, the pipeline's TTS voice is used."""

    id: str


Voice = BuiltinVoice | VoiceId
"""OpenAI's built-in voice names or a custom voice; anything else is refused as OpenAI does."""


class OutputAudio(_Model):
    """``audio.output``; the voice and speed are reported, the TTS has one voice."""

    format: AudioFormat = Field(default_factory=lambda: PCMFormat(type="audio/pcm"))
    voice: Voice = "marin"
    speed: float = Field(default=1.0, ge=0.25, le=1.5)


class SessionAudioConfig(_Model):
    """``audio``."""

    input: SessionInputAudio = Field(default_factory=SessionInputAudio)
    output: OutputAudio = Field(default_factory=OutputAudio)


class FunctionTool(_Model):
    """A function tool: passed to the language model stage as a chat-completions tool."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None

    def chat_tool(self) -> dict[str, Any]:
        """The tool in chat-completions form (``{"type": "function", "function": ...}``)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        function["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return {"type": "function", "function": function}


class ToolChoiceFunction(_Model):
    """``{"type": "function", "name": ...}``."""

    type: Literal["function"]
    name: str


ToolChoice = Literal["none", "auto", "required"] | ToolChoiceFunction
MaxTokens = Annotated[int, Field(ge=1, le=4096)] | Literal["inf"]
_AUDIO_ONLY: tuple[Literal["text", "audio"], ...] = ("audio",)
Modalities = Annotated[list[Literal["text", "audio"]], Field(min_length=1, max_length=1)]


class RetentionRatio(_Model):
    """``{"type": "retention_ratio", ...}`` truncation (accepted, reported)."""

    type: Literal["retention_ratio"]
    retention_ratio: float = Field(ge=0.0, le=1.0)
    token_limits: dict[str, int] | None = None


class SessionConfig(_Model):
    """A full GA realtime session, as reported in ``session.created``/``session.updated``."""

    type: Literal["realtime"]
    object: Literal["realtime.session"] = "realtime.session"
    id: str = ""
    model: str = "gpt-realtime"
    expires_at: int = 0
    output_modalities: Modalities = Field(default_factory=lambda: list(_AUDIO_ONLY))
    instructions: str = DEFAULT_INSTRUCTIONS
    audio: SessionAudioConfig = Field(default_factory=SessionAudioConfig)
    tools: list[FunctionTool] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    max_output_tokens: MaxTokens = "inf"
    truncation: Literal["auto", "disabled"] | RetentionRatio = "auto"
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    prompt: dict[str, Any] | None = None
    tracing: Literal["auto"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent to clients (reasoning-model fields only when set)."""
        data = self.model_dump(mode="json")
        for key in ("parallel_tool_calls", "reasoning"):
            if data[key] is None:
                del data[key]
        return data


class ResponseAudioOutput(_Model):
    """``response.audio.output``."""

    format: AudioFormat | None = None
    voice: Voice | None = None


class ResponseAudio(_Model):
    """``response.audio``."""

    output: ResponseAudioOutput | None = None


class ResponseParams(_Model):
    """The optional ``response`` object of ``response.create``."""

    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    output_modalities: Modalities | None = None
    audio: ResponseAudio | None = None
    max_output_tokens: MaxTokens | None = None
    conversation: Literal["auto", "none"] = "auto"
    input: list[dict[str, Any]] | None = None
    metadata: Annotated[dict[str, str], Field(max_length=16)] | None = None
    prompt: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None


register_tags(["audio/pcm", "audio/pcmu", "audio/pcma", "server_vad", "semantic_vad"])

_READ_ONLY = ("object", "id", "expires_at")
_MERGED: dict[str, Any] = {
    "audio": {"input": {"noise_reduction": {}, "transcription": {}}, "output": {}}
}


def default_session(
    model: str, *, instructions: str = DEFAULT_INSTRUCTIONS, max_duration_s: float = 3600.0
) -> SessionConfig:
    """The configuration a new connection starts with (reported in ``session.created``)."""
    from pipelines.serve.protocol import new_id

    return SessionConfig(
        type="realtime",
        id=new_id("sess"),
        model=model,
        expires_at=int(time.time() + max_duration_s),
        instructions=instructions,
    )


def merge_session(
    current: SessionConfig, update: dict[str, Any], *, event_id: str | None = None
) -> SessionConfig:
    """Apply a ``session.update`` to ``current``; raises :class:`ProtocolError`, applies nothing."""
    if "type" not in update:
        raise ProtocolError(
            "Missing required parameter: 'session.type'.",
            code="missing_required_parameter",
            param="session.type",
            event_id=event_id,
        )
    if update["type"] == "transcription":
        raise ProtocolError(
            "This server runs 'realtime' sessions only; transcription sessions are not "
            "supported (audio.input.transcription gives transcripts in a realtime session).",
            param="session.type",
            event_id=event_id,
        )
    if "model" in update and update["model"] != current.model:
        raise ProtocolError(
            f"The model of a session cannot change (it is '{current.model}'); "
            "choose it with ?model= when connecting.",
            param="session.model",
            event_id=event_id,
        )
    merged = _merge(current.model_dump(mode="json"), update, _MERGED)
    for key in _READ_ONLY:
        merged[key] = getattr(current, key)
    turn = update.get("audio", {}).get("input", {}) if isinstance(update.get("audio"), dict) else {}
    new_turn = turn.get("turn_detection") if isinstance(turn, dict) else None
    old_turn = current.audio.input.turn_detection
    if (
        isinstance(new_turn, dict)
        and old_turn is not None
        and new_turn.get("type") == old_turn.type
    ):
        merged["audio"]["input"]["turn_detection"] = {**old_turn.model_dump(), **new_turn}
    try:
        return SessionConfig.model_validate(merged)
    except ValidationError as exc:
        raise validation_error(exc, "session", event_id=event_id) from None


def _merge(base: dict[str, Any], update: dict[str, Any], nested: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if key in nested and isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value, nested[key])
        else:
            out[key] = value
    return out


def parse_response_params(
    data: dict[str, Any] | None, *, event_id: str | None = None
) -> ResponseParams:
    """Validate ``response.create``'s ``response`` object."""
    try:
        return ResponseParams.model_validate(data or {})
    except ValidationError as exc:
        raise validation_error(exc, "response", event_id=event_id) from None
