"""Speech synthesis with OpenAI's audio API (gpt-4o-mini-tts, tts-1), 24 kHz PCM.

:class:`OpenAITTS` keeps the text-to-speech contract through
:class:`~processors.tts.base.TTSProcessor`, which cuts the reply into sentences
or clauses and hands each piece to :meth:`OpenAITTS.synthesize` in a worker
thread. A piece is requested with ``audio.speech.with_streaming_response.create``
(``response_format="pcm"``: raw 24 kHz PCM16) and read as it streams. The
base's contract pushes a piece's text before its audio, so a piece's audio is
pushed once it has all arrived: the first audio of a reply comes one short
clause's synthesis after its text (the base's ``first_clause_min_words``
keeps that piece short). Works with any server offering the endpoint. A
request that fails (after the SDK's ``max_retries``), or a stream cut short,
skips its piece (the base's rule): no partial audio of a piece is played.

Each reply's ``TTSStoppedFrame`` is followed by a ``MetricsFrame`` with
``cost_usd``, an estimate: per character for ``tts-1``, from characters and
seconds of audio for token-priced models (the endpoint reports no usage).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from pydantic import Field

from framework.frames.base import Direction, Frame
from framework.frames.control import TTSStoppedFrame
from framework.frames.lifecycle import MetricSample, MetricsFrame
from processors.openai_common import OpenAIClientParams, describe_error, make_client
from processors.pricing import SPEECH_PRICES, SpeechPrice, lookup_price, speech_cost
from processors.tts.base import TTSParams, TTSProcessor

__all__ = ["OpenAITTS", "OpenAITTSParams"]

RATE = 24000
"""The rate of ``response_format="pcm"``: 24 kHz mono PCM16."""


class OpenAITTSParams(TTSParams, OpenAIClientParams):
    """Settings of :class:`OpenAITTS`."""

    model: str = Field(
        default="gpt-4o-mini-tts",
        min_length=1,
        description="gpt-4o-mini-tts, tts-1, tts-1-hd, or the server's model.",
    )
    voice: str = Field(
        default="marin",
        min_length=1,
        description="alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse, "
        "marin, cedar (tts-1 has fewer), or the server's voice.",
    )
    instructions: str | None = Field(
        default=None, description="How to speak (gpt-4o-mini-tts only), e.g. 'calm and warm'."
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Speech speed.")
    prices: dict[str, SpeechPrice] = Field(
        default_factory=dict, description="Price overrides by model id."
    )


class OpenAITTS(TTSProcessor[OpenAITTSParams]):
    """A synthesiser on the OpenAI speech API; see the module docstring."""

    Params: ClassVar[type[OpenAITTSParams]] = OpenAITTSParams

    def __init__(self, params: OpenAITTSParams | None = None, *, name: str | None = None) -> None:
        """Create the stage; the client is made when the pipeline starts."""
        super().__init__(params or OpenAITTSParams(), name=name)
        self._client: Any = None
        self._price = lookup_price(SPEECH_PRICES, self.params.model, self.params.prices)
        self._lock = threading.Lock()
        self._reply_chars = 0
        self._reply_audio_s = 0.0
        self.cost_usd = 0.0
        """Estimated cost of every reply so far."""

    @property
    def voice_sample_rate(self) -> int:
        """24 kHz, the rate of the API's ``pcm`` format."""
        return RATE

    def load(self) -> None:
        """Create the (blocking) client; a missing key fails the start, naming it."""
        self._client = make_client(self.params, sync=True)

    async def cleanup(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def synthesize(self, text: str) -> bytes:
        """Worker thread: request ``text`` as streamed PCM and collect it."""
        p = self.params
        request: dict[str, Any] = {
            "model": p.model,
            "voice": p.voice,
            "input": text,
            "response_format": "pcm",
        }
        if p.instructions:
            request["instructions"] = p.instructions
        if p.speed != 1.0:
            request["speed"] = p.speed
        audio = bytearray()
        try:
            with self._client.audio.speech.with_streaming_response.create(**request) as response:
                for chunk in response.iter_bytes(4800):
                    audio += chunk
        except Exception as exc:  # one line, never the key (a dropped connection too)
            raise RuntimeError(describe_error(exc, p)) from None
        if len(audio) % 2:
            del audio[-1]
        with self._lock:
            self._reply_chars += len(text)
            self._reply_audio_s += len(audio) / (2 * RATE)
        return bytes(audio)

    async def push(self, frame: Frame, direction: Direction = Direction.DOWNSTREAM) -> None:
        """Push; a reply's ``TTSStoppedFrame`` is followed by its cost."""
        await super().push(frame, direction)
        if isinstance(frame, TTSStoppedFrame) and direction is Direction.DOWNSTREAM:
            with self._lock:
                chars, audio_s = self._reply_chars, self._reply_audio_s
                self._reply_chars, self._reply_audio_s = 0, 0.0
            cost = speech_cost(self._price, chars=chars, audio_s=audio_s)
            self.cost_usd += cost
            extra = {"model": self.params.model, "chars": chars, "audio_s": round(audio_s, 3)}
            await super().push(
                MetricsFrame(samples=[MetricSample(self.name, "cost_usd", cost, "USD", extra)])
            )
