"""Server events of a Realtime session, turned into frames and requests.

:class:`RealtimeEvents` is the half of :class:`~processors.realtime.openai.OpenAIRealtime`
that reacts to the server: one handler per GA event type (dispatched on the
``type`` string: the SDK parses events without validating them), the reply
writer, tool calls and the ``response.create`` queue. Events it does not know
are ignored; a known event with missing or broken fields becomes a
``malformed_event`` error and the session goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from framework import Direction, Processor
from framework.frames import (
    EndFrame,
    Frame,
    FunctionCallFrame,
    FunctionCallResultFrame,
    InterimTranscriptionFrame,
    MetricSample,
    MetricsFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.pricing import (
    TRANSCRIPTION_PRICES,
    RealtimePrice,
    RealtimeUsage,
    lookup_price,
    transcription_cost,
)
from processors.realtime._input import BYTES_PER_MS, InputAudio
from processors.realtime._output import ReplyWriter
from processors.realtime._params import OpenAIRealtimeParams
from processors.realtime._state import History, Playback, Responses
from processors.toolset import ToolResult, ToolSet, ToolTask

if TYPE_CHECKING:
    from processors.realtime._connection import RealtimeLink

__all__ = ["RealtimeEvents"]

log = logging.getLogger("parley.realtime")

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class RealtimeEvents(Processor):
    """Server-event handling shared state and handlers; subclassed by the processor."""

    params: OpenAIRealtimeParams
    tools: ToolSet
    usage: RealtimeUsage
    transcription_cost_usd: float
    _price: RealtimePrice | None
    _link: RealtimeLink | None
    _input: InputAudio
    _history: History
    _playback: Playback
    _responses: Responses
    _writer: ReplyWriter | None
    _tool_tasks: dict[str, ToolTask]
    _ids: int
    _cancel_ids: set[str]
    _cancel_on_create: bool
    _ended: bool
    _bot_speaking: bool
    _self_interrupting: bool
    _allow_interruptions: bool
    _out_rate: int
    _ttfa_ref_ns: int
    _interim: dict[str, str]

    async def _barge_in(self, *, server_side: bool) -> None:
        raise NotImplementedError

    # --------------------------------------------------------------- requests

    def _event_id(self) -> str:
        self._ids += 1
        return f"parley_{self._ids}"

    def _request_response(self, *, for_tools: bool = False) -> None:
        link = self._link
        if link is None or not link.connected:
            self._responses.pending = True
            self._responses.pending_for_tools |= for_tools
            return
        if self._responses.want(for_tools=for_tools):
            self._send_create()

    def _send_create(self) -> None:
        assert self._link is not None
        eid = self._event_id()
        if self._link.send({"type": "response.create", "event_id": eid}):
            self._responses.sent(eid)
            self._ttfa_ref_ns = time.monotonic_ns()

    # ---------------------------------------------------------- server events

    async def _on_event(self, event: dict[str, Any]) -> None:
        handler = _EVENT_HANDLERS.get(event["type"])
        if handler is None or self._ended:
            return
        try:
            await handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            await self.push_error(
                f"{self.name}: malformed {event['type']} event from the server: "
                f"{type(exc).__name__}: {exc}",
                code="malformed_event",
            )

    async def _ev_malformed(self, event: dict[str, Any]) -> None:
        await self.push_error(
            f"{self.name}: the realtime server sent a message that is not a JSON event: "
            f"{event.get('raw', '')!r}",
            code="malformed_event",
        )

    async def _ev_error(self, event: dict[str, Any]) -> None:
        err = event.get("error") or {}
        code = str(err.get("code") or err.get("type") or "server_error")
        message = str(err.get("message") or "no message")
        eid = err.get("event_id")
        if code == "conversation_already_has_active_response":
            self._responses.create_failed(busy=True)
            log.debug("%s: a response is active; the request is queued", self.name)
            return
        if eid in self._cancel_ids:  # cancelling a response that had already ended
            self._cancel_ids.discard(eid)
            return
        if code == "session_expired" and self._link is not None:
            self._link.expired = True  # the close that follows is reconnected
            log.info("%s: realtime session expired: %s", self.name, message)
            return
        if eid and eid == self._responses.create_event_id:
            self._responses.create_failed(busy=False)
        await self.push_error(f"{self.name}: realtime server error [{code}]: {message}", code=code)

    async def _ev_speech_started(self, event: dict[str, Any]) -> None:
        if not self.params.server_turns:
            return
        active = self._responses.active
        replying = self._bot_speaking or self._playback.pending_ms > 0
        if self._allow_interruptions and (replying or (active and not active.muted)):
            await self._barge_in(server_side=True)
            self._self_interrupting = True
            try:
                await self.broadcast_interruption()
            finally:
                self._self_interrupting = False
        started = UserStartedSpeakingFrame(
            speech_start_ns=self._input.server_ns(event.get("audio_start_ms"))
        )
        await self.push(started, UP)
        await self.push(started, DOWN)

    async def _ev_speech_stopped(self, event: dict[str, Any]) -> None:
        if not self.params.server_turns:
            return
        self._ttfa_ref_ns = time.monotonic_ns()
        stopped = UserStoppedSpeakingFrame(
            speech_end_ns=self._input.server_ns(event.get("audio_end_ms"))
        )
        await self.push(stopped, UP)
        await self.push(stopped, DOWN)

    async def _ev_committed(self, event: dict[str, Any]) -> None:
        self._history.user(str(event["item_id"]))

    async def _ev_transcript_delta(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id", ""))
        text = self._interim.get(item_id, "") + str(event.get("delta", ""))
        self._interim[item_id] = text
        await self.push(InterimTranscriptionFrame(text=text))

    async def _ev_transcript_done(self, event: dict[str, Any]) -> None:
        item_id = str(event["item_id"])
        text = str(event.get("transcript", "")).strip()
        self._interim.pop(item_id, None)
        self._history.user(item_id, text)
        model = self.params.transcription_model or ""
        price = lookup_price(TRANSCRIPTION_PRICES, model)
        self.transcription_cost_usd += transcription_cost(event.get("usage"), price)
        await self.push(TranscriptionFrame(text=text))

    async def _ev_response_created(self, event: dict[str, Any]) -> None:
        response_id = str(event["response"]["id"])
        info = self._responses.created(response_id)
        if self._cancel_on_create and self._link is not None:
            self._cancel_on_create = False
            info.muted = True
            eid = self._event_id()
            self._cancel_ids.add(eid)
            self._link.send(
                {"type": "response.cancel", "event_id": eid, "response_id": response_id}
            )

    async def _writer_for(self, response_id: str) -> ReplyWriter | None:
        info = self._responses.get(response_id)
        if info is None:
            info = self._responses.created(response_id)
        if info.muted:
            return None
        writer = self._writer
        if writer is None or writer.response_id != response_id:
            await self._finish_writer()
            writer = self._writer = ReplyWriter(self.push, response_id, self._out_rate)
            info.started_output = True
        return writer

    async def _finish_writer(self) -> None:
        if self._writer is not None:
            await self._writer.finish()

    async def _ev_audio_delta(self, event: dict[str, Any]) -> None:
        pcm = base64.b64decode(event["delta"], validate=True)
        pcm = pcm[: len(pcm) & ~1]
        response_id, item_id = str(event["response_id"]), str(event["item_id"])
        generation = self._link.generation if self._link else 0
        item = self._playback.received(item_id, response_id, generation, len(pcm) / BYTES_PER_MS)
        writer = await self._writer_for(response_id)
        info = self._responses.get(response_id)
        if writer is None or info is None or not pcm:
            return
        first, info.audio_started = not info.audio_started, True
        await writer.audio(pcm)
        self._playback.pushed(item, len(pcm) / BYTES_PER_MS)
        if first and self._ttfa_ref_ns:
            ttfa = (time.monotonic_ns() - self._ttfa_ref_ns) / 1e9
            self._ttfa_ref_ns = 0
            await self._metrics([("ttfa", ttfa, "s")], response_id=response_id)

    async def _ev_audio_done(self, event: dict[str, Any]) -> None:
        self._playback.audio_done(str(event["item_id"]))
        writer = self._writer
        if writer is not None and writer.response_id == event.get("response_id"):
            await writer.flush_audio()

    async def _ev_text_delta(self, event: dict[str, Any]) -> None:
        writer = await self._writer_for(str(event["response_id"]))
        if writer is not None:
            self._history.assistant(str(event["item_id"]), str(event.get("delta", "")))
            await writer.text(str(event.get("delta", "")))

    async def _ev_text_done(self, event: dict[str, Any]) -> None:
        writer = await self._writer_for(str(event["response_id"]))
        final = event.get("transcript", event.get("text"))
        if writer is not None and isinstance(final, str):
            self._history.set_assistant(str(event["item_id"]), final)
            await writer.flush_text(final)

    async def _ev_function_call(self, event: dict[str, Any]) -> None:
        call_id, name = str(event["call_id"]), str(event.get("name", ""))
        arguments = str(event.get("arguments") or "")
        response_id = str(event.get("response_id", ""))
        self._history.function_call(call_id, name, arguments)
        info = self._responses.get(response_id)
        if info is not None and info.muted:  # interrupted: answer the call, do not run it
            await self._tool_done(
                response_id,
                ToolResult(
                    call_id,
                    name,
                    json.dumps({"error": "cancelled: the user interrupted"}),
                    ok=False,
                    error="cancelled",
                ),
            )
            return
        try:
            parsed = json.loads(arguments) if arguments else {}
        except json.JSONDecodeError:
            parsed = {}
        await self.push(
            FunctionCallFrame(
                call_id=call_id,
                function_name=name,
                arguments=parsed if isinstance(parsed, dict) else {},
            )
        )
        if info is not None:
            info.calls.add(call_id)
            info.had_calls = True

        async def done(result: ToolResult) -> None:
            await self._tool_done(response_id, result)

        self._tool_tasks[call_id] = self.tools.start(
            self.context.task_group, name, arguments, call_id=call_id, on_result=done
        )

    async def _tool_done(self, response_id: str, result: ToolResult) -> None:
        self._tool_tasks.pop(result.call_id, None)
        self._history.function_output(result.call_id, result.output)
        if self._ended:
            return
        if self._link is not None:
            self._link.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": result.call_id,
                        "output": result.output,
                    },
                }
            )
        await self.push(
            FunctionCallResultFrame(
                call_id=result.call_id,
                function_name=result.name,
                result=result.value if result.ok else {"error": result.error},
                run_llm=False,
            )
        )
        await self._metrics([("tool_s", result.elapsed_s, "s")], tool=result.name, ok=result.ok)
        info = self._responses.get(response_id)
        if info is None:
            return
        info.calls.discard(result.call_id)
        if info.done and not info.calls and not info.muted:
            self._request_response(for_tools=True)

    async def _ev_response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response") or {}
        response_id = str(response.get("id", ""))
        info = self._responses.done(response_id)
        if self._writer is not None and self._writer.response_id == response_id:
            await self._finish_writer()
        usage = response.get("usage")
        if usage:
            found = RealtimeUsage.from_usage(usage, self._price)
            self.usage = self.usage + found
            await self._metrics(
                [
                    ("input_text_tokens", found.text_in, "tokens"),
                    ("input_audio_tokens", found.audio_in, "tokens"),
                    ("input_cached_text_tokens", found.cached_text_in, "tokens"),
                    ("input_cached_audio_tokens", found.cached_audio_in, "tokens"),
                    ("output_text_tokens", found.text_out, "tokens"),
                    ("output_audio_tokens", found.audio_out, "tokens"),
                    ("cost_usd", found.cost_usd, "USD"),
                ],
                response_id=response_id,
                model=self.params.model,
                status=response.get("status"),
                priced=self._price is not None,
            )
        if response.get("status") == "failed":
            details = response.get("status_details") or {}
            error = details.get("error") or {}
            await self.push_error(
                f"{self.name}: realtime response failed: {error.get('message') or details}",
                code=str(error.get("code") or "response_failed"),
            )
        if info is not None and info.had_calls and not info.calls and not info.muted:
            self._request_response(for_tools=True)
        if self._responses.take_pending():
            self._send_create()

    async def _metrics(self, values: list[tuple[str, float, str]], **extra: Any) -> None:
        if self._ended:
            return
        samples = [MetricSample(self.name, n, float(v), u, extra) for n, v, u in values]
        await self.push(MetricsFrame(samples=samples))

    async def push(self, frame: Frame, direction: Direction = DOWN) -> None:
        """Push; after the End frame went by, only system frames and the End itself go on."""
        if self._ended and not frame.is_system and not isinstance(frame, EndFrame):
            return
        await super().push(frame, direction)


_EVENT_HANDLERS = {
    "parley.malformed": RealtimeEvents._ev_malformed,
    "error": RealtimeEvents._ev_error,
    "input_audio_buffer.speech_started": RealtimeEvents._ev_speech_started,
    "input_audio_buffer.speech_stopped": RealtimeEvents._ev_speech_stopped,
    "input_audio_buffer.committed": RealtimeEvents._ev_committed,
    "conversation.item.input_audio_transcription.delta": RealtimeEvents._ev_transcript_delta,
    "conversation.item.input_audio_transcription.completed": RealtimeEvents._ev_transcript_done,
    "response.created": RealtimeEvents._ev_response_created,
    "response.output_audio.delta": RealtimeEvents._ev_audio_delta,
    "response.output_audio.done": RealtimeEvents._ev_audio_done,
    "response.output_audio_transcript.delta": RealtimeEvents._ev_text_delta,
    "response.output_audio_transcript.done": RealtimeEvents._ev_text_done,
    "response.function_call_arguments.done": RealtimeEvents._ev_function_call,
    "response.done": RealtimeEvents._ev_response_done,
}
