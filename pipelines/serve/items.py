"""Conversation items: storage, wire form, client validation, truncation and LLM messages.

A :class:`Conversation` keeps the session's items in order. Items are plain
objects (:class:`Item` with :class:`Part` contents) so the server can keep what
the wire form leaves out: the raw audio of audio parts (for retrieve and
truncate), the words the STT heard in a user audio part (the language model
reads them even when no transcription events were asked for), and the spoken
pieces of an assistant audio part with their audio spans (for truncation).

Truncating an assistant audio part cuts its audio at ``audio_end_ms`` and keeps
the transcript of the words heard: whole pieces before the cut plus the share of
the cut piece's words given by the share of its audio played. (OpenAI's server
drops the transcript of a truncated part; this server's language model reads
text, not audio, so it keeps what the user heard, as the cascade does.)
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.serve.protocol import ProtocolError, new_id, validation_error

__all__ = [
    "Conversation",
    "Item",
    "Part",
    "audio_ms",
    "item_from_client",
    "text_tokens",
]

BYTES_PER_MS = {"audio/pcm": 48, "audio/pcmu": 8, "audio/pcma": 8}


def audio_ms(num_bytes: int, fmt: str) -> float:
    """Milliseconds of ``num_bytes`` of audio in format ``fmt``."""
    return num_bytes / BYTES_PER_MS[fmt]


def text_tokens(text: str | None) -> int:
    """Approximate token count of ``text``: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(slots=True)
class Part:
    """One content part of a message item."""

    type: str
    text: str | None = None
    transcript: str | None = None
    audio: bytearray | None = None
    audio_format: str = "audio/pcm"
    heard: str | None = None
    """User audio: what the STT heard, whether or not it is reported as ``transcript``."""
    pieces: list[tuple[str, float, float]] = field(default_factory=list)
    """Assistant audio: spoken pieces with their audio span in ms."""

    @property
    def duration_ms(self) -> float:
        """Length of the part's audio in milliseconds (0 without audio)."""
        return audio_ms(len(self.audio), self.audio_format) if self.audio else 0.0

    def wire(self, *, include_audio: bool = False) -> dict[str, Any]:
        """The part as sent to clients."""
        data: dict[str, Any] = {"type": self.type}
        if self.type in ("input_text", "output_text"):
            data["text"] = self.text or ""
        elif self.type in ("input_audio", "output_audio"):
            data["transcript"] = self.transcript
            if include_audio:
                data["audio"] = base64.b64encode(bytes(self.audio or b"")).decode("ascii")
        return data

    def model_text(self) -> str:
        """What the language model reads for this part."""
        if self.type in ("input_text", "output_text"):
            return self.text or ""
        if self.type == "input_audio":
            return self.transcript or self.heard or ""
        return self.transcript or ""


@dataclass(slots=True)
class Item:
    """A conversation item: a message, a function call or a function call's output."""

    id: str
    type: Literal["message", "function_call", "function_call_output"]
    role: str | None = None
    status: str = "completed"
    content: list[Part] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None

    def wire(self, *, include_audio: bool = False) -> dict[str, Any]:
        """The item as sent to clients (audio only for ``retrieve``)."""
        data: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type}
        if self.type == "message":
            data["status"] = self.status
            data["role"] = self.role
            data["content"] = [p.wire(include_audio=include_audio) for p in self.content]
        elif self.type == "function_call":
            data.update(
                status=self.status,
                call_id=self.call_id,
                name=self.name,
                arguments=self.arguments or "",
            )
        else:
            data.update(call_id=self.call_id, output=self.output or "")
        return data

    def chat_message(self) -> dict[str, Any] | None:
        """The item as a chat-completions message, or None if it says nothing."""
        if self.type == "function_call":
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": self.call_id,
                        "type": "function",
                        "function": {"name": self.name, "arguments": self.arguments or "{}"},
                    }
                ],
            }
        if self.type == "function_call_output":
            return {"role": "tool", "tool_call_id": self.call_id, "content": self.output or ""}
        text = " ".join(t for t in (p.model_text().strip() for p in self.content) if t)
        if not text:
            return None
        return {"role": self.role, "content": text}

    def usage(self) -> tuple[int, int]:
        """(text tokens, audio tokens) of the item as model input."""
        text = audio = 0
        for part in self.content:
            text += text_tokens(part.model_text())
            if part.audio:
                rate = 100.0 if part.type == "input_audio" else 50.0
                audio += math.ceil(part.duration_ms / rate)
        text += text_tokens(self.arguments) + text_tokens(self.output)
        return text, audio


class Conversation:
    """The default conversation: items in order, found by id."""

    def __init__(self) -> None:
        """Start empty; its id is reported in responses."""
        self.id = new_id("conv")
        self._items: list[Item] = []

    def __iter__(self) -> Any:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str, *, event_id: str | None = None, param: str = "item_id") -> Item:
        """The item ``item_id``; raises :class:`ProtocolError` if there is none."""
        for item in self._items:
            if item.id == item_id:
                return item
        raise ProtocolError(
            f"Item with item_id '{item_id}' not found in the conversation.",
            code="item_not_found",
            param=param,
            event_id=event_id,
        )

    def add(
        self, item: Item, previous_item_id: str | None = None, *, event_id: str | None = None
    ) -> str | None:
        """Insert ``item`` after ``previous_item_id`` (end if None, start if ``"root"``).

        Returns the id of the item now before it (None at the start).
        """
        if any(existing.id == item.id for existing in self._items):
            raise ProtocolError(
                f"Item id '{item.id}' already exists in the conversation; use a new id or none.",
                code="item_id_exists",
                param="item.id",
                event_id=event_id,
            )
        if previous_item_id is None:
            index = len(self._items)
        elif previous_item_id == "root":
            index = 0
        else:
            previous = self.get(previous_item_id, event_id=event_id, param="previous_item_id")
            index = self._items.index(previous) + 1
        self._items.insert(index, item)
        return self._items[index - 1].id if index > 0 else None

    def delete(self, item_id: str, *, event_id: str | None = None) -> None:
        """Remove ``item_id``; raises :class:`ProtocolError` if absent."""
        self._items.remove(self.get(item_id, event_id=event_id))

    def last_id(self) -> str | None:
        """The id of the last item, or None."""
        return self._items[-1].id if self._items else None


def truncate(
    item: Item, content_index: int, audio_end_ms: int, *, event_id: str | None = None
) -> None:
    """Cut an assistant audio part at ``audio_end_ms``; raises :class:`ProtocolError`."""
    if item.type != "message" or item.role != "assistant":
        raise ProtocolError(
            "Only model output audio messages can be truncated "
            f"(item '{item.id}' is a {item.role or item.type} {item.type}).",
            code="unsupported_content_type",
            param="item_id",
            event_id=event_id,
        )
    if content_index >= len(item.content) or item.content[content_index].type != "output_audio":
        raise ProtocolError(
            f"Content part {content_index} of item '{item.id}' is not output audio; "
            "use content_index 0 of an assistant audio item.",
            code="unsupported_content_type",
            param="content_index",
            event_id=event_id,
        )
    if item.status == "in_progress":
        raise ProtocolError(
            f"Item '{item.id}' is still being generated; cancel the response first "
            "(response.cancel), then truncate.",
            code="item_in_progress",
            param="item_id",
            event_id=event_id,
        )
    part = item.content[content_index]
    duration = part.duration_ms
    if audio_end_ms <= 0 or audio_end_ms > math.ceil(duration):
        raise ProtocolError(
            f"audio_end_ms must be between 1 and the audio's length: audio content of "
            f"{duration:.0f}ms is already shorter than {audio_end_ms}ms."
            if audio_end_ms > 0
            else "audio_end_ms must be positive; delete the item if none of it was played.",
            code="invalid_value",
            param="audio_end_ms",
            event_id=event_id,
        )
    keep = min(len(part.audio or b""), int(audio_end_ms * BYTES_PER_MS[part.audio_format]))
    keep -= keep % (2 if part.audio_format == "audio/pcm" else 1)
    assert part.audio is not None
    del part.audio[keep:]
    words: list[str] = []
    kept_pieces: list[tuple[str, float, float]] = []
    for text, start, end in part.pieces:
        if end <= audio_end_ms:
            words.append(text.strip())
            kept_pieces.append((text, start, end))
        elif start < audio_end_ms:
            split = text.split()
            share = (audio_end_ms - start) / max(end - start, 1e-9)
            heard = " ".join(split[: int(len(split) * share)])
            if heard:
                words.append(heard)
                kept_pieces.append((heard, start, float(audio_end_ms)))
    part.pieces = kept_pieces
    part.transcript = " ".join(w for w in words if w)


# --------------------------------------------------------------- client-created items


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _InputText(_M):
    type: Literal["input_text"]
    text: str


class _InputAudio(_M):
    type: Literal["input_audio"]
    audio: str | None = None
    transcript: str | None = None


class _OutputText(_M):
    type: Literal["output_text"]
    text: str


class _Common(_M):
    id: str | None = Field(default=None, min_length=1, max_length=64)
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None


class _UserMessage(_Common):
    type: Literal["message"]
    role: Literal["user"]
    content: list[_InputText | _InputAudio] = Field(min_length=1)


class _SystemMessage(_Common):
    type: Literal["message"]
    role: Literal["system"]
    content: list[_InputText] = Field(min_length=1)


class _AssistantMessage(_Common):
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[_OutputText] = Field(min_length=1)


class _FunctionCall(_Common):
    type: Literal["function_call"]
    name: str
    arguments: str
    call_id: str | None = None


class _FunctionCallOutput(_Common):
    type: Literal["function_call_output"]
    call_id: str
    output: str


_MESSAGES: dict[str, type[_Common]] = {
    "user": _UserMessage,
    "system": _SystemMessage,
    "assistant": _AssistantMessage,
}


def item_from_client(
    data: dict[str, Any], input_format: str, *, event_id: str | None = None, prefix: str = "item"
) -> Item:
    """Validate an item from ``conversation.item.create`` (or ``response.input``)."""
    kind = data.get("type")
    model: type[_Common]
    if kind == "message":
        role = data.get("role")
        if role not in _MESSAGES:
            raise ProtocolError(
                f"Invalid value: {role!r}. Supported values are: 'user', 'system' and 'assistant'.",
                param=f"{prefix}.role",
                event_id=event_id,
            )
        model = _MESSAGES[str(role)]
        for index, part in enumerate(data.get("content") or []):
            if isinstance(part, dict) and part.get("type") in ("input_image", "output_audio"):
                raise ProtocolError(
                    f"Content type '{part['type']}' cannot be created by a client here: "
                    "this server's model reads text (input_image is not supported; "
                    "assistant audio comes only from responses).",
                    code="unsupported_content_type",
                    param=f"{prefix}.content[{index}].type",
                    event_id=event_id,
                )
    elif kind == "function_call":
        model = _FunctionCall
    elif kind == "function_call_output":
        model = _FunctionCallOutput
    else:
        raise ProtocolError(
            f"Invalid value: {kind!r}. Supported values are: 'message', 'function_call' "
            "and 'function_call_output'.",
            param=f"{prefix}.type",
            event_id=event_id,
        )
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, prefix, event_id=event_id) from None
    item = Item(id=parsed.id or new_id("item"), type=parsed.type)  # type: ignore[attr-defined]
    if isinstance(parsed, _FunctionCall):
        item.name, item.arguments = parsed.name, parsed.arguments
        item.call_id = parsed.call_id or new_id("call")
    elif isinstance(parsed, _FunctionCallOutput):
        item.call_id, item.output = parsed.call_id, parsed.output
    else:
        item.role = parsed.role  # type: ignore[attr-defined]
        for index, content in enumerate(parsed.content):  # type: ignore[attr-defined]
            item.content.append(
                _part(content, input_format, f"{prefix}.content[{index}]", event_id)
            )
    return item


def _part(content: _M, input_format: str, param: str, event_id: str | None) -> Part:
    if isinstance(content, _InputAudio):
        audio = bytearray()
        if content.audio:
            try:
                audio = bytearray(base64.b64decode(content.audio, validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    "Invalid base64 audio.", param=f"{param}.audio", event_id=event_id
                ) from None
        return Part(
            type="input_audio",
            transcript=content.transcript,
            audio=audio,
            audio_format=input_format,
        )
    assert isinstance(content, _InputText | _OutputText)
    return Part(type=content.type, text=content.text)
