"""Reply handling of a session: the active response, fed by the pipeline's output.

A mixin of :class:`~pipelines.serve.session.RealtimeSession`. The session's
pipeline processors report the language model's text, the TTS's spoken pieces
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
only if the turn ends without the user going on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from framework.frames import ErrorFrame, FunctionCallFrame, OutputAudioFrame
from pipelines.serve import handlers
from pipelines.serve.protocol import error_event, new_id
from pipelines.serve.responses import Response
from pipelines.serve.stages import function_arguments

if TYPE_CHECKING:
    from pipelines.serve.session_config import SessionConfig
    from pipelines.serve.speculation import HeldReply
    from pipelines.serve.stages import Controller

__all__ = ["ReplyHandling"]

log = logging.getLogger("parley.serve")


class ReplyHandling:
    """The active response of a session (see the module docstring)."""

    config: SessionConfig
    controller: Controller
    response: Response | None
    deferred_auto: bool
    audio_produced: bool
    ready: anyio.Event
    start_errors: list[str]
    _prepare_scope: anyio.CancelScope | None

    if TYPE_CHECKING:  # provided by the session and the other mixin

        def send(self, message: dict[str, Any]) -> None: ...
        def start_soon(self, fn: Any, *args: Any) -> None: ...
        def arm_idle_timer(self, response: Response) -> None: ...
        def held_reply(self) -> HeldReply | None: ...
        async def withdraw_reply(self) -> None: ...

    def set_prepare_scope(self, scope: anyio.CancelScope | None) -> None:
        """The scope of the task preparing the active response's model input."""
        self._prepare_scope = scope

    async def end_response(
        self, status: str, reason: str | None = None, error: dict[str, Any] | None = None
    ) -> Response | None:
        """Stop the active response now (cancelled, incomplete or failed)."""
        response = self.response
        if response is None:
            return None
        self.response = None
        if self._prepare_scope is not None:
            self._prepare_scope.cancel()
            self._prepare_scope = None
        await self.controller.interrupt()
        response.finish(status, reason, error)
        if reason == "turn_detected":
            # The new turn's own response, at its end, answers a turn that was waiting.
            self.deferred_auto = False
        else:
            await self._after_response()
        return response

    async def cancel_response(self, reason: str) -> None:
        """Cancel the active response (``turn_detected`` or ``client_cancelled``)."""
        await self.end_response("cancelled", reason)

    async def _after_response(self) -> None:
        """A response ended: answer the VAD turn that waited for it, if one did."""
        if self.deferred_auto and self.response is None:
            self.deferred_auto = False
            await handlers.create_response(self, None, auto=True)  # type: ignore[arg-type]

    async def on_stage_error(self, frame: ErrorFrame) -> None:
        """A stage failed: fail the active response and tell the client."""
        log.warning("session %s: %s: %s", self.config.id, frame.processor, frame.message)
        if not self.ready.is_set():
            self.start_errors.append(f"{frame.processor}: {frame.message}")
            return
        detail = {
            "type": "server_error",
            "code": frame.code or "pipeline_error",
            "message": frame.message,
        }
        self.send(
            error_event(
                f"{frame.processor}: {frame.message}",
                type_="server_error",
                code=frame.code or "pipeline_error",
            )
        )
        # The failing stage may be reporting from its own worker, which the interruption
        # cancels: end the response from a task of the session's own.
        if self.response is not None:
            self.start_soon(self._fail_response, self.response, detail)
        elif self.held_reply() is not None:  # the turn's end asks the model again
            self.start_soon(self.withdraw_reply)

    async def _fail_response(self, response: Response, detail: dict[str, Any]) -> None:
        if self.response is response:
            await self.end_response("failed", None, detail)

    def _output(self) -> Response | HeldReply | None:
        """Where the pipeline's output goes: the active response, or a held reply."""
        return self.response if self.response is not None else self.held_reply()

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
                    self.start_soon(self.limit_reached, target)
            return False
        if not target.settings.audio:
            target.text(text)
            return False
        return True

    async def limit_reached(self, response: Response) -> None:
        """``max_output_tokens`` was reached: the response ends ``incomplete``."""
        if self.response is response:
            await self.end_response("incomplete", "max_output_tokens")

    def on_transcript_piece(self, text: str) -> None:
        """A spoken piece's text, just before its audio."""
        target = self._output()
        if target is not None:
            target.transcript(text)

    def on_audio(self, frame: OutputAudioFrame) -> None:
        """Synthesised audio of the active response."""
        target = self._output()
        if target is not None:
            self.audio_produced = self.audio_produced or target is self.response
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
        response = self.response
        if response is None:
            held = self.held_reply()
            if held is not None:  # answered when the turn ends
                held.ended = True
            return
        self.response = None
        self._prepare_scope = None
        response.finish("completed")
        self.arm_idle_timer(response)
        await self._after_response()
