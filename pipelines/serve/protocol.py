"""The wire protocol of the local Realtime server: ids, errors and client-event validation.

Client events are JSON objects with a ``type``. Each known type has a strict
pydantic model (unknown fields and wrong types are errors, nothing is coerced);
:func:`parse_client_event` turns a raw WebSocket message into one of them or
raises :class:`ProtocolError`, which the session turns into an ``error`` event
(``invalid_request_error``, with the client's ``event_id`` echoed) while the
connection stays open. Nested objects (the session, an item, a response) are
validated by their own models in :mod:`pipelines.serve.session_config` and
:mod:`pipelines.serve.items`, with :func:`validation_error` naming the parameter
the way OpenAI does (``session.audio.input.turn_detection.threshold``).

Error codes follow OpenAI's where they are known (``missing_required_parameter``,
``unknown_parameter``, ``invalid_value``, ``invalid_type``,
``conversation_already_has_active_response``, ``input_audio_buffer_commit_empty``,
``response_cancel_not_active``, ``session_expired``); the others are this
server's own descriptive codes (``invalid_json``, ``message_too_large``,
``item_not_found``...).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CLIENT_EVENTS",
    "ClientEvent",
    "ProtocolError",
    "error_event",
    "event",
    "new_id",
    "parse_client_event",
    "validation_error",
]


def new_id(prefix: str) -> str:
    """A fresh id such as ``event_3f9c...`` (prefixes: event, sess, item, resp, call, conv)."""
    return f"{prefix}_{uuid.uuid4().hex[:22]}"


def event(type_: str, **fields: Any) -> dict[str, Any]:
    """A server event: ``{"type": ..., "event_id": "event_...", **fields}``."""
    return {"type": type_, "event_id": new_id("event"), **fields}


class ProtocolError(Exception):
    """A client event the server refuses; becomes an ``error`` event, the session goes on."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = "invalid_value",
        param: str | None = None,
        type_: str = "invalid_request_error",
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.type = type_
        self.event_id = event_id


def error_event(
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str = "invalid_request_error",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event (``event_id`` is the client event that caused it)."""
    return event(
        "error",
        error={
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    )


def protocol_error_event(exc: ProtocolError) -> dict[str, Any]:
    """The ``error`` event for ``exc``."""
    return error_event(
        exc.message, code=exc.code, param=exc.param, type_=exc.type, event_id=exc.event_id
    )


# ------------------------------------------------------------------ validation errors

_TAGS: set[str] = set()
"""Discriminator values pydantic puts in error locations; they are not parameter names."""


def register_tags(tags: Iterable[str]) -> None:
    """Declare union tag values to leave out of parameter paths in error messages."""
    _TAGS.update(tags)


_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none", "any"})


def _is_tag(part: str) -> bool:
    """Whether a location part names a union member rather than a parameter.

    pydantic puts the member it tried into the location: a registered tag value,
    a schema name (``constrained-int``, ``literal['inf']``, ``function-after[...]``,
    ``str``) or a model's class name (``VoiceId``); parameter names are snake_case.
    """
    return (
        part in _TAGS
        or part in _SCALAR_TAGS
        or "[" in part
        or part.startswith(("constrained-", "function-", "lax-", "strict-"))
        or (part[:1].isupper() and part.isidentifier())
    )


def _param(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_tag(part):
            path = f"{path}.{part}" if path else str(part)
    return path


def validation_error(
    exc: ValidationError, prefix: str = "", *, event_id: str | None = None
) -> ProtocolError:
    """The first problem of a pydantic ``ValidationError`` as a :class:`ProtocolError`."""
    err = exc.errors(include_url=False)[0]
    param = _param(prefix, tuple(err["loc"]))
    kind = err["type"]
    got = err.get("input")
    if kind == "missing":
        return ProtocolError(
            f"Missing required parameter: '{param}'.",
            code="missing_required_parameter",
            param=param,
            event_id=event_id,
        )
    if kind == "extra_forbidden":
        return ProtocolError(
            f"Unknown parameter: '{param}'.",
            code="unknown_parameter",
            param=param,
            event_id=event_id,
        )
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        expected = str((err.get("ctx") or {}).get("expected", ""))
        head, sep, last = expected.rpartition(" or ")
        if sep:  # OpenAI lists them as 'a', 'b', and 'c'
            expected = f"{head}, and {last}" if "," in head else f"{head} and {last}"
        return ProtocolError(
            f"Invalid value: {_short(got)}. Supported values are: {expected}.",
            code="invalid_value",
            param=param,
            event_id=event_id,
        )
    if kind.endswith("_type") or kind in ("model_type", "dict_type", "list_type"):
        return ProtocolError(
            f"Invalid type for '{param}': {err['msg'].lower()}, but got {_kind(got)}.",
            code="invalid_type",
            param=param,
            event_id=event_id,
        )
    return ProtocolError(
        f"Invalid value for '{param}': {err['msg']} (got {_short(got)}).",
        code="invalid_value",
        param=param,
        event_id=event_id,
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------- client events

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects in a client event (a tool's JSON Schema fits)."""
_TOO_DEEP = object()


class _ClientEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    event_id: str | None = Field(default=None, max_length=512)


class SessionUpdate(_ClientEvent):
    """``session.update``: the session fields to change (validated on merge)."""

    type: Literal["session.update"]
    session: dict[str, Any]


class InputAudioBufferAppend(_ClientEvent):
    """``input_audio_buffer.append``: base64 audio in the session's input format."""

    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioBufferCommit(_ClientEvent):
    """``input_audio_buffer.commit``: turn the buffer into a user audio item."""

    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_ClientEvent):
    """``input_audio_buffer.clear``: drop the buffered audio."""

    type: Literal["input_audio_buffer.clear"]


class ConversationItemCreate(_ClientEvent):
    """``conversation.item.create``: add an item (validated by the items module)."""

    type: Literal["conversation.item.create"]
    item: dict[str, Any]
    previous_item_id: str | None = None


class ConversationItemTruncate(_ClientEvent):
    """``conversation.item.truncate``: cut an assistant audio item at ``audio_end_ms``."""

    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ConversationItemDelete(_ClientEvent):
    """``conversation.item.delete``."""

    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemRetrieve(_ClientEvent):
    """``conversation.item.retrieve``."""

    type: Literal["conversation.item.retrieve"]
    item_id: str


class ResponseCreate(_ClientEvent):
    """``response.create``: optional per-response overrides (validated separately)."""

    type: Literal["response.create"]
    response: dict[str, Any] | None = None


class ResponseCancel(_ClientEvent):
    """``response.cancel``: stop the active response (or the one named)."""

    type: Literal["response.cancel"]
    response_id: str | None = None


class OutputAudioBufferClear(_ClientEvent):
    """``output_audio_buffer.clear``: WebRTC/SIP only; refused over WebSocket."""

    type: Literal["output_audio_buffer.clear"]


ClientEvent = (
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemTruncate
    | ConversationItemDelete
    | ConversationItemRetrieve
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear
)

CLIENT_EVENTS: dict[str, type[_ClientEvent]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferCommit,
        InputAudioBufferClear,
        ConversationItemCreate,
        ConversationItemTruncate,
        ConversationItemDelete,
        ConversationItemRetrieve,
        ResponseCreate,
        ResponseCancel,
        OutputAudioBufferClear,
    )
}
"""Client event type -> its model."""


def parse_client_event(raw: str | bytes, *, max_bytes: int | None = None) -> Any:
    """Validate one WebSocket message as a client event; raises :class:`ProtocolError`."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise ProtocolError(
            f"Message of {len(raw)} bytes exceeds this server's limit of {max_bytes} bytes; "
            "send audio in smaller input_audio_buffer.append events.",
            code="message_too_large",
            event_id=_peek_event_id(raw),
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"The message is not valid JSON ({exc}); send one JSON object per message.",
            code="invalid_json",
        ) from None
    except RecursionError:
        data = _TOO_DEEP  # nested deeper than the parser goes: refused just below
    if data is _TOO_DEEP or _deeper_than(data, MAX_JSON_DEPTH):
        raise ProtocolError(
            f"The message nests arrays and objects more than {MAX_JSON_DEPTH} levels deep; "
            "this server accepts at most that.",
            code="invalid_json",
        )
    if not isinstance(data, dict):
        raise ProtocolError(
            f"A client event must be a JSON object, got {_kind(data)}.", code="invalid_json"
        )
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data.get("type")
    if kind is None:
        raise ProtocolError(
            "Missing required parameter: 'type'.",
            code="missing_required_parameter",
            param="type",
            event_id=event_id,
        )
    model = CLIENT_EVENTS.get(kind) if isinstance(kind, str) else None
    if model is None:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
        raise ProtocolError(
            f"Invalid value: {_short(kind)}. Supported values are: {supported}.",
            code="invalid_value",
            param="type",
            event_id=event_id,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, event_id=event_id) from None


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and dicts more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _peek_event_id(raw: str | bytes) -> str | None:
    """The event_id of an oversized message, if it sits near the start (no full parse)."""
    head = raw[:512] if isinstance(raw, str) else raw[:512].decode("utf-8", "replace")
    marker = head.find('"event_id"')
    if marker < 0:
        return None
    rest = head[marker + 10 :].lstrip(" :")
    if not rest.startswith('"'):
        return None
    end = rest.find('"', 1)
    return rest[1:end] if end > 0 else None
