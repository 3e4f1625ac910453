"""One model response: the GA event sequence from ``response.created`` to ``response.done``.

A :class:`Response` is fed by the session's output processors (transcript
pieces, audio, text, function calls) and emits, through the session's send
function, the sequence of the protocol reference (§2.3)::

    response.created, rate_limits.updated,
    response.output_item.added, conversation.item.added, response.content_part.added,
    response.output_audio_transcript.delta / response.output_audio.delta ...,
    response.output_audio.done, response.output_audio_transcript.done,
    response.content_part.done, response.output_item.done, conversation.item.done,
    [function_call items: output_item.added, conversation.item.added,
     response.function_call_arguments.delta, .done, output_item.done, conversation.item.done]
    response.done (status, status_details, output, usage)

The assistant message item is opened on the first output, so a response that
only calls a function has no empty message. Audio goes out as fast as it is
made (the client plays it), in deltas of at most ``delta_ms``.

Usage follows the published rules of thumb: input audio costs 1 token per
100 ms, output audio 1 token per 50 ms (assistant audio already in the context
counts as input at that rate), and text ~1 token per 4 characters (an
approximation: the pipeline's model has its own tokenizer).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from framework.audio import StreamResampler, alaw_encode, ulaw_encode
from pipelines.serve.items import BYTES_PER_MS, Conversation, Item, Part, audio_ms, text_tokens
from pipelines.serve.over_bot import Playback
from pipelines.serve.protocol import event, new_id
from pipelines.serve.session_config import ResponseParams, SessionConfig, ToolChoiceFunction

__all__ = ["Response", "ResponseSettings", "model_messages", "response_settings"]

Send = Callable[[dict[str, Any]], None]
FORMAT_RATE = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}


@dataclass(slots=True)
class ResponseSettings:
    """What a response was asked to be (session settings with per-response overrides)."""

    modalities: list[str]
    audio_format: dict[str, Any]
    voice: Any
    conversation: str = "auto"
    instructions: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_output_tokens: int | str = "inf"
    metadata: dict[str, str] | None = None

    @property
    def audio(self) -> bool:
        """True when the response speaks (``["audio"]``), False for ``["text"]``."""
        return "audio" in self.modalities


def response_settings(config: SessionConfig, params: ResponseParams) -> ResponseSettings:
    """The settings of a response: the session's, with ``params``' overrides."""
    s = config
    out = params.audio.output if params.audio is not None else None
    fmt = out.format if out is not None and out.format is not None else s.audio.output.format
    voice = out.voice if out is not None and out.voice is not None else s.audio.output.voice
    tools = params.tools if params.tools is not None else s.tools
    choice = params.tool_choice if params.tool_choice is not None else s.tool_choice
    if choice == "none":
        tools = []
    elif isinstance(choice, ToolChoiceFunction):
        tools = [t for t in tools if t.name == choice.name]
    return ResponseSettings(
        modalities=list(params.output_modalities or s.output_modalities),
        audio_format=fmt.model_dump(),
        voice=voice if isinstance(voice, str) else voice.model_dump(),
        conversation=params.conversation,
        instructions=params.instructions if params.instructions is not None else s.instructions,
        tools=[t.chat_tool() for t in tools],
        max_output_tokens=(
            params.max_output_tokens
            if params.max_output_tokens is not None
            else s.max_output_tokens
        ),
        metadata=params.metadata,
    )


def model_messages(instructions: str, items: list[Item]) -> list[dict[str, Any]]:
    """The chat messages the language model answers: instructions, then the items."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        message = item.chat_message()
        if message is not None:
            messages.append(message)
    return messages


class Response:
    """The state and events of one response; see the module docstring."""

    def __init__(
        self,
        settings: ResponseSettings,
        *,
        send: Send,
        conversation: Conversation,
        input_usage: tuple[int, int] = (0, 0),
        delta_ms: int = 100,
        playback: Playback | None = None,
    ) -> None:
        """Create an ``in_progress`` response; call :meth:`start` to announce it."""
        self.id = new_id("resp")
        self.settings = settings
        self.status = "in_progress"
        self.output: list[Item] = []
        self.output_tokens_text = 0
        self._send = send
        self._conversation = conversation
        self._input_usage = input_usage
        self._playback = playback
        self._delta_bytes = max(1, delta_ms) * BYTES_PER_MS[settings.audio_format["type"]]
        self._message: Item | None = None
        self._resampler: StreamResampler | None = None
        self._audio_ms = 0.0
        self._sent = 0
        self.audio_deltas = 0
        self.llm_chunks = 0
        self.limit_hit = False

    @property
    def done(self) -> bool:
        """True once ``response.done`` was sent."""
        return self.status != "in_progress"

    @property
    def message(self) -> Item | None:
        """The assistant message item being generated, if one is open."""
        return self._message

    # ------------------------------------------------------------------ events

    def start(self) -> None:
        """Send ``response.created`` and ``rate_limits.updated``."""
        self._send(event("response.created", response=self.wire()))
        self._send(
            event(
                "rate_limits.updated",
                rate_limits=[
                    {
                        "name": "requests",
                        "limit": 10_000,
                        "remaining": 9_999,
                        "reset_seconds": 0.006,
                    },
                    {
                        "name": "tokens",
                        "limit": 1_000_000,
                        "remaining": 995_000,
                        "reset_seconds": 0.3,
                    },
                ],
            )
        )

    def transcript(self, text: str) -> None:
        """A spoken piece's text: a transcript delta (audio) or a text delta (text)."""
        if not text:
            return
        part = self._open()
        if part.type == "output_text":
            self.text(text)
            return
        self.flush_audio()
        current = part.transcript or ""
        if current and not current[-1].isspace() and not text[0].isspace():
            text = " " + text
        part.transcript = current + text
        part.pieces.append((text, self._audio_ms, self._audio_ms))
        self.output_tokens_text += text_tokens(text)
        self._send(event("response.output_audio_transcript.delta", **self._ids(), delta=text))

    def text(self, text: str) -> None:
        """Streamed text of a text-only response."""
        if not text:
            return
        part = self._open()
        part.text = (part.text or "") + text
        self.output_tokens_text += text_tokens(text)
        self._send(event("response.output_text.delta", **self._ids(), delta=text))

    def audio(self, pcm: bytes, sample_rate: int) -> None:
        """Synthesised PCM16 audio: converted to the output format and sent as deltas."""
        if not pcm or not self.settings.audio:
            return
        part = self._open()
        self._emit_audio(part, self._convert(pcm, sample_rate))

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        """A function call output item, sent whole (after closing any open message)."""
        self._close_message("completed")
        item = Item(
            id=new_id("item"),
            type="function_call",
            status="in_progress",
            call_id=call_id,
            name=name,
            arguments="",
        )
        index = self._add_item(item)
        ids = {
            "response_id": self.id,
            "item_id": item.id,
            "output_index": index,
            "call_id": call_id,
        }
        self._send(event("response.function_call_arguments.delta", **ids, delta=arguments))
        item.arguments = arguments
        item.status = "completed"
        self.output_tokens_text += text_tokens(arguments) + text_tokens(name)
        self._send(
            event("response.function_call_arguments.done", **ids, name=name, arguments=arguments)
        )
        self._item_done(item, index)

    def finish(
        self, status: str, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        """Close any open item and send ``response.done``. Idempotent."""
        if self.done:
            return
        self._close_message("completed" if status == "completed" else "incomplete")
        self.status = status
        details: dict[str, Any] | None = None
        if status != "completed":
            details = {"type": status, "reason": reason}
            if error is not None:
                details["error"] = error
        self._send(event("response.done", response=self.wire(details, usage=True)))

    # --------------------------------------------------------------- internals

    def wire(
        self, status_details: dict[str, Any] | None = None, *, usage: bool = False
    ) -> dict[str, Any]:
        """The response object of ``response.created`` / ``response.done``."""
        s = self.settings
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": status_details,
            "output": [item.wire() for item in self.output],
            "conversation_id": self._conversation.id if s.conversation == "auto" else None,
            "output_modalities": list(s.modalities),
            "max_output_tokens": s.max_output_tokens,
            "audio": {"output": {"format": s.audio_format, "voice": s.voice}},
            "usage": self.usage() if usage else None,
            "metadata": s.metadata,
        }

    def usage(self) -> dict[str, Any]:
        """Token usage by the rules in the module docstring."""
        in_text, in_audio = self._input_usage
        out_audio = sum(
            math.ceil(p.duration_ms / 50.0) for item in self.output for p in item.content if p.audio
        )
        out_text = self.output_tokens_text
        inputs, outputs = in_text + in_audio, out_text + out_audio
        return {
            "total_tokens": inputs + outputs,
            "input_tokens": inputs,
            "output_tokens": outputs,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    def _ids(self) -> dict[str, Any]:
        assert self._message is not None
        return {
            "response_id": self.id,
            "item_id": self._message.id,
            "output_index": self.output.index(self._message),
            "content_index": 0,
        }

    def _add_item(self, item: Item) -> int:
        index = len(self.output)
        self.output.append(item)
        self._send(
            event(
                "response.output_item.added",
                response_id=self.id,
                output_index=index,
                item=item.wire(),
            )
        )
        if self.settings.conversation == "auto":
            previous = self._conversation.add(item)
            self._send(
                event("conversation.item.added", previous_item_id=previous, item=item.wire())
            )
        return index

    def _item_done(self, item: Item, index: int) -> None:
        self._send(
            event(
                "response.output_item.done",
                response_id=self.id,
                output_index=index,
                item=item.wire(),
            )
        )
        if self.settings.conversation == "auto":
            self._send(
                event(
                    "conversation.item.done",
                    previous_item_id=self._previous(item),
                    item=item.wire(),
                )
            )

    def _previous(self, item: Item) -> str | None:
        previous = None
        for existing in self._conversation:
            if existing.id == item.id:
                return previous
            previous = existing.id
        return None

    def _open(self) -> Part:
        if self._message is not None:
            return self._message.content[0]
        audio = self.settings.audio
        part = Part(
            type="output_audio" if audio else "output_text",
            transcript="" if audio else None,
            text=None if audio else "",
            audio=bytearray() if audio else None,
            audio_format=self.settings.audio_format["type"],
        )
        item = Item(id=new_id("item"), type="message", role="assistant", status="in_progress")
        self._message = item
        self._sent = 0
        self._audio_ms = 0.0
        self._add_item(item)
        item.content.append(part)
        wire_part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        self._send(event("response.content_part.added", **self._ids(), part=wire_part))
        return part

    def _close_message(self, status: str) -> None:
        item = self._message
        if item is None:
            return
        part = item.content[0]
        ids = self._ids()
        if part.type == "output_audio":
            if self._resampler is not None:
                self._emit_audio(part, self._encode(self._resampler.flush()))
            self.flush_audio()
            self._send(event("response.output_audio.done", **ids))
            self._send(
                event(
                    "response.output_audio_transcript.done", **ids, transcript=part.transcript or ""
                )
            )
            wire_part = {"type": "audio", "transcript": part.transcript or ""}
        else:
            self._send(event("response.output_text.done", **ids, text=part.text or ""))
            wire_part = {"type": "text", "text": part.text or ""}
        self._send(event("response.content_part.done", **ids, part=wire_part))
        item.status = status
        self._message = None
        self._item_done(item, ids["output_index"])

    def _convert(self, pcm: bytes, sample_rate: int) -> bytes:
        target = FORMAT_RATE[self.settings.audio_format["type"]]
        if sample_rate != target:
            if self._resampler is None or self._resampler.from_rate != sample_rate:
                self._resampler = StreamResampler(sample_rate, target)
            pcm = self._resampler.process(pcm)
        return self._encode(pcm)

    def _encode(self, pcm: bytes) -> bytes:
        kind = self.settings.audio_format["type"]
        if kind == "audio/pcmu":
            return ulaw_encode(pcm)
        if kind == "audio/pcma":
            return alaw_encode(pcm)
        return pcm

    def flush_audio(self) -> None:
        """Send the audio held back to fill a delta (at the end of a spoken piece)."""
        part = self._message.content[0] if self._message is not None else None
        if part is None or part.audio is None or self._sent >= len(part.audio):
            return
        self._send_delta(part, len(part.audio))

    def _emit_audio(self, part: Part, data: bytes) -> None:
        if not data:
            return
        assert part.audio is not None
        part.audio += data
        step = self._delta_bytes
        while len(part.audio) - self._sent >= step:
            self._send_delta(part, self._sent + step)
        self._audio_ms = audio_ms(len(part.audio), part.audio_format)
        if part.pieces:
            text, start, _ = part.pieces[-1]
            part.pieces[-1] = (text, start, self._audio_ms)

    def _send_delta(self, part: Part, end: int) -> None:
        assert part.audio is not None
        chunk = bytes(part.audio[self._sent : end])
        self._sent = end
        self.audio_deltas += 1
        if self._playback is not None:
            self._playback.sent(audio_ms(len(chunk), part.audio_format))
        self._send(
            event(
                "response.output_audio.delta",
                **self._ids(),
                delta=base64.b64encode(chunk).decode("ascii"),
            )
        )
