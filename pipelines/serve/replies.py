"""Reply handling of a session: the active response, fed by the pipeline's output.

A component of :class:`~pipelines.serve.session.RealtimeSession`: it creates
responses (``response.create``, an answered turn, the idle timeout) and ends
them. The session's pipeline processors report the language model's text, the TTS's spoken pieces
and audio, function calls, the end of a reply and failures here; they go to
the active :class:`~pipelines.serve.responses.Response`, and frames that arrive
when no response is active (the tail of a cancelled one) are dropped.

A response ends in one of four ways: ``completed`` (the reply's end frame
reached the output), ``cancelled`` (``turn_detected`` or ``client_cancelled``),
``incomplete`` (``max_output_tokens``, counted in model text chunks) or
``failed`` (a stage reported an error). Ending it early pushes an interruption
downstream of the STT, which stops generation and synthesis. A VAD turn that
ended while the response ran (``interrupt_response`` off) is answered when it
ends, however it ends; a barge-in (``turn_detected``) leaves that to the
response of the new turn, which covers the waiting one too.

While a reply prepared at a pause of the user's turn is held
(:mod:`pipelines.serve.speculation`), the output goes to its
:class:`~pipelines.serve.speculation.HeldReply` instead, and reaches the client
only if the turn ends without the user going on (:meth:`Replies.answer_turn`).

``idle_timeout_ms`` (server_vad): after a completed response, when neither
speech nor a new response came for ``idle_timeout_ms`` plus the response's
audio duration (the client's playback), the session sends
``input_audio_buffer.timeout_triggered``, commits the buffered audio (silence,
possibly empty) as a user item and creates a response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from framework.frames import ErrorFrame, FunctionCallFrame, OutputAudioFrame
from pipelines.serve.commits import commit_buffer
from pipelines.serve.items import Item, item_from_client, text_tokens
from pipelines.serve.options import ServerOptions
from pipelines.serve.protocol import ProtocolError, error_event, event, new_id, protocol_error_event
from pipelines.serve.responses import Response, ResponseSettings, model_messages, response_settings
from pipelines.serve.session_config import ResponseParams, ServerVad
from pipelines.serve.speculation import Speculator
from pipelines.serve.stages import Controller, function_arguments
from pipelines.serve.state import HeldReply, Send, SessionState, Spawn, Speculation

__all__ = ["Replies", "WaitReady"]

log = logging.getLogger("parley.serve")

WaitReady = Callable[[str | None], Awaitable[None]]
"""Wait until the pipeline has started (raises ProtocolError naming the event if it fails)."""


class Replies:
    """The responses of a session (see the module docstring)."""

    def __init__(
        self,
        state: SessionState,
        *,
        send: Send,
        spawn: Spawn,
        controller: Controller,
        speculator: Speculator,
        options: ServerOptions,
        wait_ready: WaitReady,
    ) -> None:
        """Run ``state``'s responses on the pipeline behind ``controller``."""
        self.state = state
        self._send = send
        self._spawn = spawn
        self._controller = controller
        self._speculator = speculator
        self._options = options
        self._wait_ready = wait_ready

    # ------------------------------------------------------------- creating

    async def create_response(
        self,
        params: ResponseParams | None,
        *,
        event_id: str | None = None,
        auto: bool = False,
    ) -> None:
        """Start a response (``response.created``) and ask the pipeline for it."""
        st = self.state
        if st.response is None and st.held_reply() is not None:
            await self._speculator.withdraw_reply()  # the model is needed now: it gives way
        if st.response is not None:
            if auto:  # a VAD turn while the model speaks: answer once it is done
                st.deferred_auto = True
                return
            raise ProtocolError(
                f"Conversation already has an active response in progress: {st.response.id}. "
                "Wait until the response is finished before creating a new one.",
                code="conversation_already_has_active_response",
                event_id=event_id,
            )
        params = params or ResponseParams()
        settings = response_settings(st.config, params)
        items = self._input_items(params, event_id)
        response = self.open_response(settings, items)
        scope = st.prepare_scope = anyio.CancelScope()
        self._spawn(self._prepare, response, items, scope)

    def open_response(self, settings: ResponseSettings, items: list[Item]) -> Response:
        """Make ``settings``' response the active one and announce it (``response.created``)."""
        st = self.state
        self.disarm_idle_timer()
        response = Response(
            settings,
            send=self._send,
            conversation=st.conversation,
            input_usage=self._input_usage(settings.instructions, items),
            delta_ms=self._options.delta_ms,
            playback=st.playback,
        )
        st.response = response
        st.prepare_scope = None
        response.start()
        return response

    async def answer_turn(self, spec: Speculation | None, item: Item) -> None:
        """The VAD turn that produced ``item`` ended: answer it, with the held reply if it fits."""
        reply = spec.reply if spec is not None else None
        if spec is None or reply is None or not self._speculator.fits(spec, item):
            if spec is not None:
                log.debug(
                    "session %s: %s answered at its end (transcribed at the pause: %s, "
                    "reply prepared: %s)",
                    self.state.config.id,
                    item.id,
                    spec.transcribed,
                    reply is not None,
                )
                await self._speculator.withdraw_reply(spec)
            await self.create_response(None, auto=True)
            return
        log.debug(
            "session %s: %s answered with the reply held since the pause (%d calls, ended: %s)",
            self.state.config.id,
            item.id,
            reply.recorded,
            reply.ended,
        )
        spec.reply = None
        # response.created, rate_limits.updated
        response = self.open_response(reply.settings, list(self.state.conversation))
        st = self.state
        st.audio_produced = st.audio_produced or (reply.has_audio and reply.settings.audio)
        reply.replay(response)
        if reply.limit_hit:
            self._spawn(self._limit_reached, response)
        elif reply.ended:
            await self.on_reply_end()

    def _input_usage(self, instructions: str, items: list[Item]) -> tuple[int, int]:
        """(text, audio) input tokens of a response's model input."""
        text, audio = text_tokens(instructions), 0
        for item in items:
            t, a = item.usage()
            text, audio = text + t, audio + a
        return text, audio

    def _input_items(self, params: ResponseParams, event_id: str | None) -> list[Item]:
        st = self.state
        if params.input is None:
            return list(st.conversation)
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
                    st.conversation.get(ref, event_id=event_id, param=f"response.input[{index}].id")
                )
            else:
                items.append(
                    item_from_client(
                        data, st.input.format, event_id=event_id, prefix=f"response.input[{index}]"
                    )
                )
        return items

    async def _prepare(
        self, response: Response, items: list[Item], scope: anyio.CancelScope
    ) -> None:
        """Wait for the input's transcripts, then hand the messages to the language model."""
        with scope:
            try:
                await self._wait_ready(None)
            except ProtocolError as exc:
                self._send(protocol_error_event(exc))
                await self.end_response(
                    "failed", None, {"type": "server_error", "message": exc.message}
                )
                return
            await self._await_transcripts(items)
            if self.state.response is not response:
                return
            messages = model_messages(response.settings.instructions, items)
            await self._controller.run_llm(messages, response.settings.tools)

    async def _await_transcripts(self, items: list[Item]) -> None:
        st = self.state
        pending = [(item, st.transcribed[item.id]) for item in items if item.id in st.transcribed]
        if not pending:
            return
        with anyio.move_on_after(self._options.transcript_timeout_s):
            for _, waiter in pending:
                await waiter.wait()
            return
        for item, waiter in pending:
            if waiter.is_set():
                continue
            log.warning("session %s: no transcript for %s in time", st.config.id, item.id)
            st.transcribed.pop(item.id, None)
            if st.config.audio.input.transcription is not None:
                self._send(
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

    # --------------------------------------------------------------- ending

    async def end_response(
        self, status: str, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> Response | None:
        """Stop the active response now (cancelled, incomplete or failed)."""
        st = self.state
        response = st.response
        if response is None:
            return None
        st.response = None
        if st.prepare_scope is not None:
            st.prepare_scope.cancel()
            st.prepare_scope = None
        await self._controller.interrupt()
        response.finish(status, reason, error)
        if reason == "turn_detected":
            # The new turn's own response, at its end, answers a turn that was waiting.
            st.deferred_auto = False
        else:
            await self._after_response()
        return response

    async def cancel_response(self, reason: str) -> None:
        """Cancel the active response (``turn_detected`` or ``client_cancelled``)."""
        self.state.playback.stop()  # the client stops playing what it has
        await self.end_response("cancelled", reason)

    async def _after_response(self) -> None:
        """A response ended: answer the VAD turn that waited for it, if one did."""
        st = self.state
        if st.deferred_auto and st.response is None:
            st.deferred_auto = False
            await self.create_response(None, auto=True)

    async def on_stage_error(self, frame: ErrorFrame) -> None:
        """A stage failed: fail the active response and tell the client."""
        st = self.state
        log.warning("session %s: %s: %s", st.config.id, frame.processor, frame.message)
        if not st.ready.is_set():
            st.start_errors.append(f"{frame.processor}: {frame.message}")
            return
        detail = {
            "type": "server_error",
            "code": frame.code or "pipeline_error",
            "message": frame.message,
        }
        self._send(
            error_event(
                f"{frame.processor}: {frame.message}",
                type_="server_error",
                code=frame.code or "pipeline_error",
            )
        )
        # The failing stage may be reporting from its own worker, which the interruption
        # cancels: end the response from a task of the session's own.
        if st.response is not None:
            self._spawn(self._fail_response, st.response, detail)
        elif st.held_reply() is not None:  # the turn's end asks the model again
            self._spawn(self._speculator.withdraw_reply)

    async def _fail_response(self, response: Response, detail: dict[str, Any]) -> None:
        if self.state.response is response:
            await self.end_response("failed", None, detail)

    async def _limit_reached(self, response: Response) -> None:
        """``max_output_tokens`` was reached: the response ends ``incomplete``."""
        if self.state.response is response:
            await self.end_response("incomplete", "max_output_tokens")

    # ------------------------------------------------------ pipeline output

    def _output(self) -> Response | HeldReply | None:
        """Where the pipeline's output goes: the active response, or a held reply."""
        st = self.state
        return st.response if st.response is not None else st.held_reply()

    def on_llm_text(self, text: str) -> bool:
        """Model text: counted, sent as text for text-only responses; True: speak it."""
        target = self._output()
        if target is None:
            return False
        target.llm_chunks += 1
        limit = target.settings.max_output_tokens
        if isinstance(limit, int) and target.llm_chunks > limit:
            if not target.limit_hit:
                target.limit_hit = True
                if isinstance(target, Response):  # a held reply ends so once adopted
                    self._spawn(self._limit_reached, target)
            return False
        if not target.settings.audio:
            target.text(text)
            return False
        return True

    def on_transcript_piece(self, text: str) -> None:
        """A spoken piece's text, just before its audio."""
        target = self._output()
        if target is not None:
            target.transcript(text)

    def on_audio(self, frame: OutputAudioFrame) -> None:
        """Synthesised audio of the active response."""
        target = self._output()
        if target is not None:
            st = self.state
            st.audio_produced = st.audio_produced or target is st.response
            target.audio(frame.audio, frame.sample_rate)

    def on_audio_flush(self) -> None:
        """The reply's synthesis ended: send the audio held back."""
        target = self._output()
        if target is not None:
            target.flush_audio()

    def on_function_call(self, frame: FunctionCallFrame) -> None:
        """The model called a function: a function_call output item."""
        target = self._output()
        if target is not None:
            target.function_call(
                frame.call_id or new_id("call"), frame.function_name, function_arguments(frame)
            )

    async def on_reply_end(self) -> None:
        """The model's reply and its audio are complete: ``response.done``."""
        st = self.state
        response = st.response
        if response is None:
            held = st.held_reply()
            if held is not None:  # answered when the turn ends
                held.ended = True
            return
        st.response = None
        st.prepare_scope = None
        response.finish("completed")
        self._arm_idle_timer(response)
        await self._after_response()

    # ---------------------------------------------------------- idle timeout

    def _arm_idle_timer(self, response: Response) -> None:
        """After a completed response: start the idle timeout, if the session has one."""
        self.disarm_idle_timer()
        td = self.state.turn_detection
        if not isinstance(td, ServerVad) or td.idle_timeout_ms is None:
            return
        played_ms = sum(p.duration_ms for item in response.output for p in item.content)
        scope = self.state.idle_scope = anyio.CancelScope()
        self._spawn(self._idle_wait, scope, (td.idle_timeout_ms + played_ms) / 1000)

    def disarm_idle_timer(self) -> None:
        """Speech, a commit or a new response came: no idle timeout."""
        st = self.state
        if st.idle_scope is not None:
            st.idle_scope.cancel()
            st.idle_scope = None

    async def _idle_wait(self, scope: anyio.CancelScope, delay_s: float) -> None:
        st = self.state
        with scope:
            await anyio.sleep(delay_s)
            st.idle_scope = None
            if st.response is not None or st.stt_turn_open:
                return
            item_id = new_id("item")
            self._send(
                event(
                    "input_audio_buffer.timeout_triggered",
                    audio_start_ms=round(st.input.buffer_start_ms),
                    audio_end_ms=round(st.input.clock_ms),
                    item_id=item_id,
                )
            )
            item = commit_buffer(st, self._send, item_id)
            item.content[0].heard = ""
            st.transcribed.pop(item.id).set()
            await self.create_response(None, auto=True)
