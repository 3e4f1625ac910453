"""Transcription with OpenAI's audio API (gpt-4o-transcribe, gpt-4o-mini-transcribe, whisper-1).

:class:`OpenAISTT` keeps the speech-to-text contract through
:class:`~processors.stt.base.STTProcessor`: when a turn ends, its audio (16 kHz
mono, with the base's pre-roll) goes to ``audio.transcriptions.create`` as a
WAV file, and the text comes back as the turn's ``TranscriptionFrame``. It
works with any server offering the endpoint (``base_url``).

The request is made once the turn has ended, so ``stt_final_s`` is one HTTP
round trip plus the server's transcription time. A failed request (after the
SDK's own ``max_retries``) is reported and made again on a new client, up to the
base's ``max_failures_in_a_row``; then the turn's transcript is empty and the
error fatal (the base's rule). Each turn also yields a
``MetricsFrame`` with ``cost_usd``, from the response's usage block (tokens
or seconds) or, without one, the audio duration at the model's per-minute price.
"""

from __future__ import annotations

import io
import wave
from typing import Any, ClassVar

from pydantic import Field

from framework.frames.lifecycle import MetricSample, MetricsFrame
from processors.openai_common import OpenAIClientParams, describe_error, make_client
from processors.pricing import (
    TRANSCRIPTION_PRICES,
    TranscriptionPrice,
    lookup_price,
    transcription_cost,
)
from processors.stt.base import SAMPLE_RATE, STTParams, STTProcessor, TurnAudio

__all__ = ["OpenAISTT", "OpenAISTTParams", "wav_bytes"]


class OpenAISTTParams(STTParams, OpenAIClientParams):
    """Settings of :class:`OpenAISTT`."""

    model: str = Field(
        default="gpt-4o-mini-transcribe",
        min_length=1,
        description="gpt-4o-transcribe, gpt-4o-mini-transcribe, whisper-1, or the server's model.",
    )
    language: str | None = Field(default="en", description="ISO-639-1 code; None detects it.")
    prompt: str | None = Field(
        default=None, description="Text that guides the transcription (names, vocabulary)."
    )
    min_audio_ms: int = Field(
        default=100, ge=0, description="Shorter turns are not sent and transcribe as empty."
    )
    prices: dict[str, TranscriptionPrice] = Field(
        default_factory=dict, description="Price overrides by model id."
    )


def wav_bytes(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono PCM16 as the bytes of a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buffer.getvalue()


class OpenAISTT(STTProcessor[OpenAISTTParams]):
    """A transcriber on the OpenAI audio API; see the module docstring."""

    Params: ClassVar[type[OpenAISTTParams]] = OpenAISTTParams

    def __init__(self, params: OpenAISTTParams | None = None, *, name: str | None = None) -> None:
        """Create the stage; the client is made when the pipeline starts."""
        super().__init__(params or OpenAISTTParams(), name=name)
        self._client: Any = None
        self._price = lookup_price(TRANSCRIPTION_PRICES, self.params.model, self.params.prices)
        self.cost_usd = 0.0
        """Cost of every transcription so far."""

    def load(self) -> None:
        """Create the client (reads the key); a missing key fails the start, naming it."""
        self._client = make_client(self.params)

    async def restart(self) -> None:
        """Replace the HTTP client (and its pooled connections) with a new one."""
        await self._close_client()
        self.load()

    async def cleanup(self) -> None:
        """Close the HTTP client."""
        await super().cleanup()
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def decode_turn(self, turn: TurnAudio) -> str:
        """Wait for the end of the turn, then send its audio."""
        await turn.wait_until(lambda: False)
        audio = turn.audio()
        if len(audio) / (2 * SAMPLE_RATE) * 1000 < self.params.min_audio_ms:
            return ""
        p = self.params
        request: dict[str, Any] = {
            "model": p.model,
            "file": ("turn.wav", wav_bytes(audio), "audio/wav"),
            "response_format": "json",
        }
        if p.language:
            request["language"] = p.language
        if p.prompt:
            request["prompt"] = p.prompt
        try:
            result = await self._client.audio.transcriptions.create(**request)
        except Exception as exc:  # one line, never the key (a dropped connection too)
            raise RuntimeError(describe_error(exc, p)) from None
        cost = transcription_cost(
            getattr(result, "usage", None), self._price, audio_s=turn.duration_s
        )
        self.cost_usd += cost
        extra = {"turn": turn.index, "model": p.model}
        await self.push(
            MetricsFrame(samples=[MetricSample(self.name, "cost_usd", cost, "USD", extra)])
        )
        return str(getattr(result, "text", "") or "")
