"""Handlers of the client events.

Each handler validates what its event asks against the session's state and
either changes the state and sends the events that report it, or raises
:class:`~pipelines.serve.protocol.ProtocolError` (sent as an ``error`` event;
nothing changes and the session goes on). What an event sets in motion is the
components' work: user turns (:class:`~pipelines.serve.turns.Turns`) and
responses (:class:`~pipelines.serve.replies.Replies`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from framework.errors import TaskFinishedError
from framework.frames import Frame, InputAudioFrame
from pipelines.serve import protocol as p
from pipelines.serve.items import Item, item_from_client, truncate
from pipelines.serve.options import ServerOptions
from pipelines.serve.protocol import ProtocolError, event
from pipelines.serve.replies import Replies, WaitReady
from pipelines.serve.session_config import merge_session, parse_response_params
from pipelines.serve.state import Send, SessionState, Spawn
from pipelines.serve.turn_settings import check_turn_model, preload_turn_model
from pipelines.serve.turns import Turns, prefix_padding_ms

__all__ = ["MIN_COMMIT_MS", "ClientEvents"]

MIN_COMMIT_MS = 100.0
_VAD_KEEP_MS = 2000.0


class ClientEvents:
    """The client events of one session, dispatched by type to their handlers."""

    def __init__(
        self,
        state: SessionState,
        *,
        send: Send,
        spawn: Spawn,
        options: ServerOptions,
        turns: Turns,
        replies: Replies,
        queue_frame: Callable[[Frame], Awaitable[None]],
        wait_ready: WaitReady,
    ) -> None:
        """Handle events against ``state``; audio goes to the pipeline by ``queue_frame``."""
        self.state = state
        self._send = send
        self._spawn = spawn
        self._options = options
        self._turns = turns
        self._replies = replies
        self._queue_frame = queue_frame
        self._wait_ready = wait_ready

    async def dispatch(self, ev: Any) -> None:
        """Handle one validated client event."""
        handler = _HANDLERS[ev.type]
        await handler(self, ev)

    async def _session_update(self, ev: p.SessionUpdate) -> None:
        st = self.state
        new = merge_session(st.config, ev.session, event_id=ev.event_id)
        old = st.config
        if st.audio_produced and new.audio.output.voice != old.audio.output.voice:
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
        st.config = new
        st.input.set_format(new.audio.input.format.type)
        if st.stt_turn_open and (
            (new.audio.input.turn_detection is None) == st.turn_by_vad
        ):  # the turn was opened under the other mode: drop it, the new mode makes its own
            st.vad_item_id = None
            await self._turns.close_stt_turn(None)
        if self._turns.apply_turn_detection():
            self._spawn(preload_turn_model)
        self._send(event("session.updated", session=new.to_wire()))
        await self._turns.resume_vad_turn()

    def _decode_audio(self, ev: p.InputAudioBufferAppend) -> bytes:
        try:
            data = base64.b64decode(ev.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "Invalid 'audio': not valid base64.", param="audio", event_id=ev.event_id
            ) from None
        limit = self._options.max_append_bytes
        if len(data) > limit:
            raise ProtocolError(
                f"Invalid 'audio': {len(data)} bytes is more than the "
                f"{limit} bytes one append may carry; send smaller chunks.",
                param="audio",
                code="audio_too_large",
                event_id=ev.event_id,
            )
        return data

    async def _append(self, ev: p.InputAudioBufferAppend) -> None:
        st = self.state
        data = self._decode_audio(ev)
        await self._wait_ready(ev.event_id)
        frames = st.input.append(data)
        td = st.turn_detection
        if td is None and frames and not st.stt_turn_open:
            await self._turns.open_stt_turn()
        await self._send_audio(frames, ev.event_id)
        if td is not None and not st.stt_turn_open:
            st.input.trim_before(st.input.clock_ms - prefix_padding_ms(td) - _VAD_KEEP_MS)

    async def _send_audio(self, frames: list[InputAudioFrame], event_id: str | None) -> None:
        """Send input frames down the session's pipeline."""
        try:
            for frame in frames:
                await self._queue_frame(frame)
        except TaskFinishedError:
            raise ProtocolError(
                "The session's pipeline has stopped.",
                type_="server_error",
                code="pipeline_stopped",
                event_id=event_id,
            ) from None

    async def _commit(self, ev: p.InputAudioBufferCommit) -> None:
        st = self.state
        buffered = st.input.buffer_ms
        if buffered < MIN_COMMIT_MS:
            raise ProtocolError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS:.0f}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
                event_id=ev.event_id,
            )
        await self._wait_ready(ev.event_id)
        # the turn's last sound, still in the resampler, goes to the STT before the turn ends
        await self._send_audio(st.input.flush(), ev.event_id)
        self._replies.disarm_idle_timer()
        item = self._turns.commit_buffer(st.vad_item_id)
        st.vad_item_id = None
        if st.stt_turn_open:
            await self._turns.close_stt_turn(item)
        else:  # nothing was heard as speech: there is no transcript to wait for
            waiter = st.transcribed.pop(item.id, None)
            if waiter is not None:
                item.content[0].heard = ""
                waiter.set()

    async def _clear(self, ev: p.InputAudioBufferClear) -> None:
        st = self.state
        st.input.clear()
        if st.stt_turn_open and not st.turn_by_vad:
            await self._turns.close_stt_turn(None)
        self._send(event("input_audio_buffer.cleared"))

    async def _item_create(self, ev: p.ConversationItemCreate) -> None:
        st = self.state
        item = item_from_client(ev.item, st.input.format, event_id=ev.event_id)
        previous = st.conversation.add(item, ev.previous_item_id, event_id=ev.event_id)
        self._send(event("conversation.item.added", previous_item_id=previous, item=item.wire()))
        self._send(event("conversation.item.done", previous_item_id=previous, item=item.wire()))

    def _check_not_generating(self, item: Item, event_id: str | None) -> None:
        response = self.state.response
        if response is not None and item in response.output and (item.status == "in_progress"):
            raise ProtocolError(
                f"Item '{item.id}' is being generated by response '{response.id}'; "
                "cancel the response first.",
                code="item_in_progress",
                param="item_id",
                event_id=event_id,
            )

    async def _item_truncate(self, ev: p.ConversationItemTruncate) -> None:
        item = self.state.conversation.get(ev.item_id, event_id=ev.event_id)
        self._check_not_generating(item, ev.event_id)
        truncate(item, ev.content_index, ev.audio_end_ms, event_id=ev.event_id)
        self.state.playback.stop()  # the client stopped playing the reply there
        self._send(
            event(
                "conversation.item.truncated",
                item_id=item.id,
                content_index=ev.content_index,
                audio_end_ms=ev.audio_end_ms,
            )
        )

    async def _item_delete(self, ev: p.ConversationItemDelete) -> None:
        conversation = self.state.conversation
        item = conversation.get(ev.item_id, event_id=ev.event_id)
        self._check_not_generating(item, ev.event_id)
        conversation.delete(item.id)
        self._send(event("conversation.item.deleted", item_id=item.id))

    async def _item_retrieve(self, ev: p.ConversationItemRetrieve) -> None:
        item = self.state.conversation.get(ev.item_id, event_id=ev.event_id)
        self._send(event("conversation.item.retrieved", item=item.wire(include_audio=True)))

    async def _response_create(self, ev: p.ResponseCreate) -> None:
        params = parse_response_params(ev.response, event_id=ev.event_id)
        await self._replies.create_response(params, event_id=ev.event_id)

    async def _response_cancel(self, ev: p.ResponseCancel) -> None:
        active = self.state.response
        if active is None or (ev.response_id is not None and ev.response_id != active.id):
            which = f"response '{ev.response_id}'" if ev.response_id else "no active response"
            raise ProtocolError(
                f"Cancellation failed: {which} found" + (" active." if ev.response_id else "."),
                code="response_cancel_not_active",
                event_id=ev.event_id,
            )
        await self._replies.cancel_response("client_cancelled")

    async def _output_clear(self, ev: p.OutputAudioBufferClear) -> None:
        raise ProtocolError(
            "output_audio_buffer.clear is for WebRTC and SIP connections. Over a WebSocket the "
            "client plays the audio: stop playback locally, then send conversation.item.truncate.",
            param="type",
            event_id=ev.event_id,
        )


_HANDLERS: dict[str, Callable[[ClientEvents, Any], Awaitable[None]]] = {
    "session.update": ClientEvents._session_update,
    "input_audio_buffer.append": ClientEvents._append,
    "input_audio_buffer.commit": ClientEvents._commit,
    "input_audio_buffer.clear": ClientEvents._clear,
    "conversation.item.create": ClientEvents._item_create,
    "conversation.item.truncate": ClientEvents._item_truncate,
    "conversation.item.delete": ClientEvents._item_delete,
    "conversation.item.retrieve": ClientEvents._item_retrieve,
    "response.create": ClientEvents._response_create,
    "response.cancel": ClientEvents._response_cancel,
    "output_audio_buffer.clear": ClientEvents._output_clear,
}
