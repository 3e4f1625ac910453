"""Server events of a Realtime session, turned into frames and requests.

:class:`ServerEvents` is the component of
:class:`~processors.realtime.openai.OpenAIRealtime` that reacts to the server:
one handler per GA event type (dispatched on the ``type`` string: the SDK parses
events without validating them), the reply writer, tool calls and the
``response.create`` queue. It reads and changes the stage's
:class:`~processors.realtime._client_state.ClientState` and reaches the pipeline
only through the narrow :class:`Stage` interface. Events it does not know are
ignored; a known event with missing or broken fields becomes a
``malformed_event`` error and the session goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from framework import Direction
from framework.frames import (
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
from processors.realtime._client_state import ClientState
from processors.realtime._input import BYTES_PER_MS
from processors.realtime._output import ReplyWriter
from processors.realtime._params import OpenAIRealtimeParams
from processors.toolset import ToolResult, ToolSet

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["ServerEvents", "Stage"]

log = logging.getLogger("parley.realtime")

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class Stage(Protocol):
    """What the event handlers need from the stage that owns them."""

    @property
    def name(self) -> str:
        """The stage's name, for errors and metrics."""
        ...

    @property
    def task_group(self) -> TaskGroup:
        """Where tool calls run."""
        ...

    async def push(self, frame: Frame, direction: Direction = ...) -> None:
        """Push a frame from the stage."""
        ...

    async def push_error(self, message: str, *, code: str = "") -> None:
        """Report a non-fatal error upstream."""
        ...

    async def broadcast_interruption(self) -> None:
        """Interrupt the whole pipeline (speech over the bot, decided by the server)."""
        ...

    async def barge_in(self, *, server_side: bool) -> None:
        """Stop the current reply; truncation follows once the played audio is known."""
        ...


class ServerEvents:
    """The server-event handlers and the response requests; see the module docstring."""

    def __init__(
        self,
        stage: Stage,
        state: ClientState,
        params: OpenAIRealtimeParams,
        tools: ToolSet,
        price: RealtimePrice | None,
    ) -> None:
        """Handle events for ``stage``, keeping the conversation in ``state``."""
        self.stage = stage
        self.state = state
        self.params = params
        self.tools = tools
        self._price = price

    # --------------------------------------------------------------- requests

    def request_response(self, *, for_tools: bool = False) -> None:
        link = self.state.link
        if link is None or not link.connected:
            self.state.responses.pending = True
            self.state.responses.pending_for_tools |= for_tools
            return
        if self.state.responses.want(for_tools=for_tools):
            self.send_create()

    def send_create(self) -> None:
        assert self.state.link is not None
        eid = self.state.event_id()
        if self.state.link.send({"type": "response.create", "event_id": eid}):
            self.state.responses.sent(eid)
            self.state.ttfa_ref_ns = time.monotonic_ns()

    # ---------------------------------------------------------- server events

    async def on_event(self, event: dict[str, Any]) -> None:
        handler = _EVENT_HANDLERS.get(event["type"])
        if handler is None or self.state.ended:
            return
        try:
            await handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            await self.stage.push_error(
                f"{self.stage.name}: malformed {event['type']} event from the server: "
                f"{type(exc).__name__}: {exc}",
                code="malformed_event",
            )

    async def _ev_malformed(self, event: dict[str, Any]) -> None:
        await self.stage.push_error(
            f"{self.stage.name}: the realtime server sent a message that is not a JSON event: "
            f"{event.get('raw', '')!r}",
            code="malformed_event",
        )

    async def _ev_error(self, event: dict[str, Any]) -> None:
        err = event.get("error") or {}
        code = str(err.get("code") or err.get("type") or "server_error")
        message = str(err.get("message") or "no message")
        eid = err.get("event_id")
        if code == "conversation_already_has_active_response":
            self.state.responses.create_failed(busy=True)
            log.debug("%s: a response is active; the request is queued", self.stage.name)
            return
        if eid in self.state.cancel_ids:  # cancelling a response that had already ended
            self.state.cancel_ids.discard(eid)
            return
        if code == "session_expired" and self.state.link is not None:
            self.state.link.expired = True  # the close that follows is reconnected
            log.info("%s: realtime session expired: %s", self.stage.name, message)
            return
        if eid and eid == self.state.responses.create_event_id:
            self.state.responses.create_failed(busy=False)
        await self.stage.push_error(
            f"{self.stage.name}: realtime server error [{code}]: {message}", code=code
        )

    async def _ev_speech_started(self, event: dict[str, Any]) -> None:
        if not self.params.server_turns:
            return
        active = self.state.responses.active
        replying = self.state.bot_speaking or self.state.playback.pending_ms > 0
        if self.state.allow_interruptions and (replying or (active and not active.muted)):
            await self.stage.barge_in(server_side=True)
            self.state.self_interrupting = True
            try:
                await self.stage.broadcast_interruption()
            finally:
                self.state.self_interrupting = False
        started = UserStartedSpeakingFrame(
            speech_start_ns=self.state.input.server_ns(event.get("audio_start_ms"))
        )
        await self.stage.push(started, UP)
        await self.stage.push(started, DOWN)

    async def _ev_speech_stopped(self, event: dict[str, Any]) -> None:
        if not self.params.server_turns:
            return
        self.state.ttfa_ref_ns = time.monotonic_ns()
        stopped = UserStoppedSpeakingFrame(
            speech_end_ns=self.state.input.server_ns(event.get("audio_end_ms"))
        )
        await self.stage.push(stopped, UP)
        await self.stage.push(stopped, DOWN)

    async def _ev_committed(self, event: dict[str, Any]) -> None:
        self.state.history.user(str(event["item_id"]))

    async def _ev_transcript_delta(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id", ""))
        text = self.state.interim.get(item_id, "") + str(event.get("delta", ""))
        self.state.interim[item_id] = text
        await self.stage.push(InterimTranscriptionFrame(text=text))

    async def _ev_transcript_done(self, event: dict[str, Any]) -> None:
        item_id = str(event["item_id"])
        text = str(event.get("transcript", "")).strip()
        self.state.interim.pop(item_id, None)
        self.state.history.user(item_id, text)
        model = self.params.transcription_model or ""
        price = lookup_price(TRANSCRIPTION_PRICES, model)
        self.state.transcription_cost_usd += transcription_cost(event.get("usage"), price)
        await self.stage.push(TranscriptionFrame(text=text))

    async def _ev_response_created(self, event: dict[str, Any]) -> None:
        response_id = str(event["response"]["id"])
        info = self.state.responses.created(response_id)
        if self.state.cancel_on_create and self.state.link is not None:
            self.state.cancel_on_create = False
            info.muted = True
            eid = self.state.event_id()
            self.state.cancel_ids.add(eid)
            self.state.link.send(
                {"type": "response.cancel", "event_id": eid, "response_id": response_id}
            )

    async def _writer_for(self, response_id: str) -> ReplyWriter | None:
        info = self.state.responses.get(response_id)
        if info is None:
            info = self.state.responses.created(response_id)
        if info.muted:
            return None
        writer = self.state.writer
        if writer is None or writer.response_id != response_id:
            await self.finish_writer()
            writer = self.state.writer = ReplyWriter(
                self.stage.push, response_id, self.state.out_rate
            )
            info.started_output = True
        return writer

    async def finish_writer(self) -> None:
        if self.state.writer is not None:
            await self.state.writer.finish()

    async def _ev_audio_delta(self, event: dict[str, Any]) -> None:
        pcm = base64.b64decode(event["delta"], validate=True)
        pcm = pcm[: len(pcm) & ~1]
        response_id, item_id = str(event["response_id"]), str(event["item_id"])
        generation = self.state.link.generation if self.state.link else 0
        item = self.state.playback.received(
            item_id, response_id, generation, len(pcm) / BYTES_PER_MS
        )
        writer = await self._writer_for(response_id)
        info = self.state.responses.get(response_id)
        if writer is None or info is None or not pcm:
            return
        first, info.audio_started = not info.audio_started, True
        await writer.audio(pcm)
        self.state.playback.pushed(item, len(pcm) / BYTES_PER_MS)
        if first and self.state.ttfa_ref_ns:
            ttfa = (time.monotonic_ns() - self.state.ttfa_ref_ns) / 1e9
            self.state.ttfa_ref_ns = 0
            await self._metrics([("ttfa", ttfa, "s")], response_id=response_id)

    async def _ev_audio_done(self, event: dict[str, Any]) -> None:
        self.state.playback.audio_done(str(event["item_id"]))
        writer = self.state.writer
        if writer is not None and writer.response_id == event.get("response_id"):
            await writer.flush_audio()

    async def _ev_text_delta(self, event: dict[str, Any]) -> None:
        writer = await self._writer_for(str(event["response_id"]))
        if writer is not None:
            self.state.history.assistant(str(event["item_id"]), str(event.get("delta", "")))
            await writer.text(str(event.get("delta", "")))

    async def _ev_text_done(self, event: dict[str, Any]) -> None:
        writer = await self._writer_for(str(event["response_id"]))
        final = event.get("transcript", event.get("text"))
        if writer is not None and isinstance(final, str):
            self.state.history.set_assistant(str(event["item_id"]), final)
            await writer.flush_text(final)

    async def _ev_function_call(self, event: dict[str, Any]) -> None:
        call_id, name = str(event["call_id"]), str(event.get("name", ""))
        arguments = str(event.get("arguments") or "")
        response_id = str(event.get("response_id", ""))
        self.state.history.function_call(call_id, name, arguments)
        info = self.state.responses.get(response_id)
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
        await self.stage.push(
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

        self.state.tool_tasks[call_id] = self.tools.start(
            self.stage.task_group, name, arguments, call_id=call_id, on_result=done
        )

    async def _tool_done(self, response_id: str, result: ToolResult) -> None:
        self.state.tool_tasks.pop(result.call_id, None)
        self.state.history.function_output(result.call_id, result.output)
        if self.state.ended:
            return
        if self.state.link is not None:
            self.state.link.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": result.call_id,
                        "output": result.output,
                    },
                }
            )
        await self.stage.push(
            FunctionCallResultFrame(
                call_id=result.call_id,
                function_name=result.name,
                result=result.value if result.ok else {"error": result.error},
                run_llm=False,
            )
        )
        await self._metrics([("tool_s", result.elapsed_s, "s")], tool=result.name, ok=result.ok)
        info = self.state.responses.get(response_id)
        if info is None:
            return
        info.calls.discard(result.call_id)
        if info.done and not info.calls and not info.muted:
            self.request_response(for_tools=True)

    async def _ev_response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response") or {}
        response_id = str(response.get("id", ""))
        info = self.state.responses.done(response_id)
        if self.state.writer is not None and self.state.writer.response_id == response_id:
            await self.finish_writer()
        usage = response.get("usage")
        if usage:
            found = RealtimeUsage.from_usage(usage, self._price)
            self.state.usage = self.state.usage + found
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
            await self.stage.push_error(
                f"{self.stage.name}: realtime response failed: {error.get('message') or details}",
                code=str(error.get("code") or "response_failed"),
            )
        if info is not None and info.had_calls and not info.calls and not info.muted:
            self.request_response(for_tools=True)
        if self.state.responses.take_pending():
            self.send_create()

    async def _metrics(self, values: list[tuple[str, float, str]], **extra: Any) -> None:
        if self.state.ended:
            return
        samples = [MetricSample(self.stage.name, n, float(v), u, extra) for n, v, u in values]
        await self.stage.push(MetricsFrame(samples=samples))


_EVENT_HANDLERS = {
    "parley.malformed": ServerEvents._ev_malformed,
    "error": ServerEvents._ev_error,
    "input_audio_buffer.speech_started": ServerEvents._ev_speech_started,
    "input_audio_buffer.speech_stopped": ServerEvents._ev_speech_stopped,
    "input_audio_buffer.committed": ServerEvents._ev_committed,
    "conversation.item.input_audio_transcription.delta": ServerEvents._ev_transcript_delta,
    "conversation.item.input_audio_transcription.completed": ServerEvents._ev_transcript_done,
    "response.created": ServerEvents._ev_response_created,
    "response.output_audio.delta": ServerEvents._ev_audio_delta,
    "response.output_audio.done": ServerEvents._ev_audio_done,
    "response.output_audio_transcript.delta": ServerEvents._ev_text_delta,
    "response.output_audio_transcript.done": ServerEvents._ev_text_done,
    "response.function_call_arguments.done": ServerEvents._ev_function_call,
    "response.done": ServerEvents._ev_response_done,
}
