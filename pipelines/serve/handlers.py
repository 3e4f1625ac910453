"""Handlers of the client events, and response creation.

Each handler validates what its event asks against the session's state and
either changes the state and sends the events that report it, or raises
:class:`~pipelines.serve.protocol.ProtocolError` (sent as an ``error`` event;
nothing changes and the session goes on).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from framework.errors import TaskFinishedError
from pipelines.serve import protocol as p
from pipelines.serve.items import Item, item_from_client, truncate
from pipelines.serve.protocol import ProtocolError, event
from pipelines.serve.responses import Response, ResponseSettings
from pipelines.serve.session_config import (
    ResponseParams,
    ToolChoiceFunction,
    merge_session,
    parse_response_params,
)
from pipelines.serve.turn_settings import check_turn_model

if TYPE_CHECKING:
    from pipelines.serve.session import RealtimeSession

__all__ = [
    "create_response",
    "dispatch",
    "model_messages",
    "open_response",
    "response_settings",
]

log = logging.getLogger("parley.serve")
MIN_COMMIT_MS = 100.0
_VAD_KEEP_MS = 2000.0


async def dispatch(session: RealtimeSession, ev: Any) -> None:
    """Handle one validated client event."""
    handler = _HANDLERS[ev.type]
    await handler(session, ev)


async def _session_update(session: RealtimeSession, ev: p.SessionUpdate) -> None:
    new = merge_session(session.config, ev.session, event_id=ev.event_id)
    old = session.config
    if session.audio_produced and new.audio.output.voice != old.audio.output.voice:
        raise ProtocolError(
            "Cannot update a conversation's voice if assistant audio is present.",
            code="cannot_update_voice",
            param="session.audio.output.voice",
            event_id=ev.event_id,
        )
    turn = new.audio.input.turn_detection
    if turn is not None and turn.type == "semantic_vad":
        problem = check_turn_model()
        if problem is not None:
            raise ProtocolError(
                f"semantic_vad needs the Smart Turn model, which this server cannot load: "
                f"{problem}. Use server_vad.",
                param="session.audio.input.turn_detection.type",
                event_id=ev.event_id,
            )
    session.config = new
    session.input.set_format(new.audio.input.format.type)
    if session.stt_turn_open and (
        (new.audio.input.turn_detection is None) == session.turn_by_vad
    ):  # the turn was opened under the other mode: drop it, the new mode makes its own
        session.vad_item_id = None
        await session.close_stt_turn(None)
    session.apply_turn_detection()
    session.send(event("session.updated", session=new.to_wire()))
    await session.resume_vad_turn()


def _decode_audio(session: RealtimeSession, ev: p.InputAudioBufferAppend) -> bytes:
    try:
        data = base64.b64decode(ev.audio, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "Invalid 'audio': not valid base64.", param="audio", event_id=ev.event_id
        ) from None
    if len(data) > session.options.max_append_bytes:
        raise ProtocolError(
            f"Invalid 'audio': {len(data)} bytes is more than the "
            f"{session.options.max_append_bytes} bytes one append may carry; send smaller "
            "chunks.",
            param="audio",
            code="audio_too_large",
            event_id=ev.event_id,
        )
    return data


async def _append(session: RealtimeSession, ev: p.InputAudioBufferAppend) -> None:
    data = _decode_audio(session, ev)
    await session.wait_ready(ev.event_id)
    frames = session.input.append(data)
    td = session.turn_detection
    if td is None and frames and not session.stt_turn_open:
        await session.open_stt_turn()
    try:
        for frame in frames:
            await session.task.queue_frame(frame)
    except TaskFinishedError:
        raise ProtocolError(
            "The session's pipeline has stopped.",
            type_="server_error",
            code="pipeline_stopped",
            event_id=ev.event_id,
        ) from None
    if td is not None and not session.stt_turn_open:
        padding = getattr(td, "prefix_padding_ms", 300)
        session.input.trim_before(session.input.clock_ms - padding - _VAD_KEEP_MS)


async def _commit(session: RealtimeSession, ev: p.InputAudioBufferCommit) -> None:
    buffered = session.input.buffer_ms
    if buffered < MIN_COMMIT_MS:
        raise ProtocolError(
            "Error committing input audio buffer: buffer too small. Expected at least "
            f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
            code="input_audio_buffer_commit_empty",
            event_id=ev.event_id,
        )
    await session.wait_ready(ev.event_id)
    session.disarm_idle_timer()
    item = session.commit_buffer(session.vad_item_id)
    session.vad_item_id = None
    if session.stt_turn_open:
        await session.close_stt_turn(item)
    else:  # nothing was heard as speech: there is no transcript to wait for
        waiter = session.transcribed.pop(item.id, None)
        if waiter is not None:
            item.content[0].heard = ""
            waiter.set()


async def _clear(session: RealtimeSession, ev: p.InputAudioBufferClear) -> None:
    session.input.clear()
    if session.stt_turn_open and not session.turn_by_vad:
        await session.close_stt_turn(None)
    session.send(event("input_audio_buffer.cleared"))


async def _item_create(session: RealtimeSession, ev: p.ConversationItemCreate) -> None:
    item = item_from_client(ev.item, session.input.format, event_id=ev.event_id)
    previous = session.conversation.add(item, ev.previous_item_id, event_id=ev.event_id)
    session.send(event("conversation.item.added", previous_item_id=previous, item=item.wire()))
    session.send(event("conversation.item.done", previous_item_id=previous, item=item.wire()))


def _check_not_generating(session: RealtimeSession, item: Item, event_id: str | None) -> None:
    if (
        session.response is not None
        and item in session.response.output
        and (item.status == "in_progress")
    ):
        raise ProtocolError(
            f"Item '{item.id}' is being generated by response '{session.response.id}'; "
            "cancel the response first.",
            code="item_in_progress",
            param="item_id",
            event_id=event_id,
        )


async def _item_truncate(session: RealtimeSession, ev: p.ConversationItemTruncate) -> None:
    item = session.conversation.get(ev.item_id, event_id=ev.event_id)
    _check_not_generating(session, item, ev.event_id)
    truncate(item, ev.content_index, ev.audio_end_ms, event_id=ev.event_id)
    session.send(
        event(
            "conversation.item.truncated",
            item_id=item.id,
            content_index=ev.content_index,
            audio_end_ms=ev.audio_end_ms,
        )
    )


async def _item_delete(session: RealtimeSession, ev: p.ConversationItemDelete) -> None:
    item = session.conversation.get(ev.item_id, event_id=ev.event_id)
    _check_not_generating(session, item, ev.event_id)
    session.conversation.delete(item.id)
    session.send(event("conversation.item.deleted", item_id=item.id))


async def _item_retrieve(session: RealtimeSession, ev: p.ConversationItemRetrieve) -> None:
    item = session.conversation.get(ev.item_id, event_id=ev.event_id)
    session.send(event("conversation.item.retrieved", item=item.wire(include_audio=True)))


async def _response_create(session: RealtimeSession, ev: p.ResponseCreate) -> None:
    params = parse_response_params(ev.response, event_id=ev.event_id)
    await create_response(session, params, event_id=ev.event_id)


async def _response_cancel(session: RealtimeSession, ev: p.ResponseCancel) -> None:
    active = session.response
    if active is None or (ev.response_id is not None and ev.response_id != active.id):
        which = f"response '{ev.response_id}'" if ev.response_id else "no active response"
        raise ProtocolError(
            f"Cancellation failed: {which} found" + (" active." if ev.response_id else "."),
            code="response_cancel_not_active",
            event_id=ev.event_id,
        )
    await session.cancel_response("client_cancelled")


async def _output_clear(session: RealtimeSession, ev: p.OutputAudioBufferClear) -> None:
    raise ProtocolError(
        "output_audio_buffer.clear is for WebRTC and SIP connections. Over a WebSocket the "
        "client plays the audio: stop playback locally, then send conversation.item.truncate.",
        param="type",
        event_id=ev.event_id,
    )


_HANDLERS: dict[str, Callable[[Any, Any], Awaitable[None]]] = {
    "session.update": _session_update,
    "input_audio_buffer.append": _append,
    "input_audio_buffer.commit": _commit,
    "input_audio_buffer.clear": _clear,
    "conversation.item.create": _item_create,
    "conversation.item.truncate": _item_truncate,
    "conversation.item.delete": _item_delete,
    "conversation.item.retrieve": _item_retrieve,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
    "output_audio_buffer.clear": _output_clear,
}


# ---------------------------------------------------------------------- responses


def response_settings(session: RealtimeSession, params: ResponseParams) -> ResponseSettings:
    """The settings of a response: the session's, with ``params``' overrides."""
    s = session.config
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


def _input_items(
    session: RealtimeSession, params: ResponseParams, event_id: str | None
) -> list[Item]:
    if params.input is None:
        return list(session.conversation)
    items: list[Item] = []
    for index, data in enumerate(params.input):
        if data.get("type") == "item_reference":
            ref = data.get("id")
            if not isinstance(ref, str):
                raise ProtocolError(
                    "Missing required parameter: 'id'.",
                    code="missing_required_parameter",
                    param=f"response.input[{index}].id",
                    event_id=event_id,
                )
            items.append(
                session.conversation.get(
                    ref, event_id=event_id, param=f"response.input[{index}].id"
                )
            )
        else:
            items.append(
                item_from_client(
                    data, session.input.format, event_id=event_id, prefix=f"response.input[{index}]"
                )
            )
    return items


async def create_response(
    session: RealtimeSession,
    params: ResponseParams | None,
    *,
    event_id: str | None = None,
    auto: bool = False,
) -> None:
    """Start a response (``response.created``) and ask the pipeline for it."""
    if session.response is None and session.held_reply() is not None:
        await session.withdraw_reply()  # the model is needed now: a prepared reply gives way
    if session.response is not None:
        if auto:  # a VAD turn while the model speaks: answer once it is done
            session.deferred_auto = True
            return
        raise ProtocolError(
            f"Conversation already has an active response in progress: {session.response.id}. "
            "Wait until the response is finished before creating a new one.",
            code="conversation_already_has_active_response",
            event_id=event_id,
        )
    params = params or ResponseParams()
    settings = response_settings(session, params)
    items = _input_items(session, params, event_id)
    response = open_response(session, settings, items)
    scope = anyio.CancelScope()
    session.set_prepare_scope(scope)
    session.start_soon(_prepare, session, response, items, scope)


def open_response(
    session: RealtimeSession, settings: ResponseSettings, items: list[Item]
) -> Response:
    """Make ``settings``' response the active one and announce it (``response.created``)."""
    session.disarm_idle_timer()
    response = Response(
        settings,
        send=session.send,
        conversation=session.conversation,
        input_usage=session.input_usage(settings.instructions, items),
        delta_ms=session.options.delta_ms,
    )
    session.response = response
    session.set_prepare_scope(None)
    response.start()
    return response


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


async def _prepare(
    session: RealtimeSession, response: Response, items: list[Item], scope: anyio.CancelScope
) -> None:
    """Wait for the input's transcripts, then hand the messages to the language model."""
    with scope:
        try:
            await session.wait_ready()
        except ProtocolError as exc:
            session.send(p.protocol_error_event(exc))
            await session.end_response(
                "failed", None, {"type": "server_error", "message": exc.message}
            )
            return
        await _await_transcripts(session, items)
        if session.response is not response:
            return
        messages = model_messages(response.settings.instructions, items)
        await session.controller.run_llm(messages, response.settings.tools)


async def _await_transcripts(session: RealtimeSession, items: list[Item]) -> None:
    pending = [
        (item, session.transcribed[item.id]) for item in items if item.id in session.transcribed
    ]
    if not pending:
        return
    with anyio.move_on_after(session.options.transcript_timeout_s):
        for _, waiter in pending:
            await waiter.wait()
        return
    for item, waiter in pending:
        if waiter.is_set():
            continue
        log.warning("session %s: no transcript for %s in time", session.config.id, item.id)
        session.transcribed.pop(item.id, None)
        if session.config.audio.input.transcription is not None:
            session.send(
                event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item.id,
                    content_index=0,
                    error={
                        "type": "server_error",
                        "code": "transcription_timeout",
                        "message": "The transcription did not arrive in time.",
                        "param": None,
                    },
                )
            )
