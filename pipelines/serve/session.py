"""One WebSocket connection: the session state machine over a cascade pipeline.

A :class:`RealtimeSession` owns one :class:`~pipelines.serve.state.SessionState`
(the session configuration, the conversation, the input audio buffer, the one
active :class:`~pipelines.serve.responses.Response`, the user turn in progress),
a Parley pipeline (:mod:`pipelines.serve.stages`) and the components that
change the state:

* :class:`~pipelines.serve.handlers.ClientEvents`: the client's events, read in
  order;
* :class:`~pipelines.serve.turns.Turns`: user turns (VAD events, STT turns,
  commits, transcripts);
* :class:`~pipelines.serve.replies.Replies`: responses, fed by the pipeline's
  output, and the idle timeout;
* :class:`~pipelines.serve.speculation.Speculator`: replies prepared at a pause.

The pipeline's session processors report to the session (it implements
:class:`~pipelines.serve.stages.SessionHooks`), which hands each report to the
component it belongs to. Server events go through one ordered outgoing queue,
written by a single task.

Turns. Under ``server_vad``/``semantic_vad`` the turn processor's speech start
becomes ``input_audio_buffer.speech_started`` (and cancels an active response
when ``interrupt_response`` is set: ``response.done`` with status ``cancelled``,
reason ``turn_detected``); its stop becomes ``speech_stopped``, ``committed``,
``conversation.item.added``/``done`` and, with ``create_response``, a response.
A pause inside a VAD turn starts the reply early, held until the turn ends
(:mod:`pipelines.serve.speculation`).
Under manual turns (``turn_detection: null``) the first append opens an STT
turn and ``input_audio_buffer.commit`` closes it. Every committed user audio
item gets the STT's transcript (reported with transcription events only when
``audio.input.transcription`` is set); a response waits for the transcripts of
its input before it asks the language model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterable, Callable, Coroutine
from typing import Any, Protocol, TypeVarTuple

import anyio
from anyio.abc import TaskGroup

from framework.frames import (
    ErrorFrame,
    FunctionCallFrame,
    OutputAudioFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipelines.config import PipelineConfig
from pipelines.serve.audio import InputAudioBuffer
from pipelines.serve.handlers import ClientEvents
from pipelines.serve.options import ServerOptions
from pipelines.serve.over_bot import over_bot_rules
from pipelines.serve.protocol import (
    ProtocolError,
    error_event,
    event,
    parse_client_event,
    protocol_error_event,
)
from pipelines.serve.replies import Replies
from pipelines.serve.session_config import DEFAULT_INSTRUCTIONS, default_session
from pipelines.serve.speculation import Speculator
from pipelines.serve.stages import build_pipeline
from pipelines.serve.state import SessionState
from pipelines.serve.turns import Turns

__all__ = ["Connection", "RealtimeSession"]

log = logging.getLogger("parley.serve")
_Args = TypeVarTuple("_Args")
_CLOSE = "__close__"


class Connection(Protocol):
    """The WebSocket as the session needs it (a ``websockets`` server connection fits)."""

    async def send(self, message: str) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    def __aiter__(self) -> Any: ...


class RealtimeSession:
    """One connection's state and components; :meth:`run` serves it until it closes."""

    def __init__(
        self,
        connection: Connection,
        pipeline: PipelineConfig,
        options: ServerOptions,
        *,
        model: str = "gpt-realtime",
        start_gate: anyio.Semaphore | None = None,
    ) -> None:
        """Prepare the session and its pipeline (models load when :meth:`run` starts).

        ``start_gate`` is shared by a server's sessions: one pipeline starts at a time.
        """
        self.connection = connection
        self._start_gate = start_gate or anyio.Semaphore(1)
        self.options = options
        config = default_session(
            model,
            max_duration_s=options.max_duration_s,
            instructions=(
                DEFAULT_INSTRUCTIONS if options.instructions is None else options.instructions
            ),
        )
        audio_in = InputAudioBuffer(
            pipeline.audio.input_sample_rate, time.monotonic_ns(), config.audio.input.format.type
        )
        self.state = SessionState(config, audio_in)
        self.closing = False
        self._pipeline_started = False
        self._closed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._out_send, self._out_recv = anyio.create_memory_object_stream[Any](float("inf"))
        self.task, self.stages = build_pipeline(pipeline, self)
        state, stages = self.state, self.stages
        self.speculator = Speculator(
            state,
            send=self.send,
            spawn=self.start_soon,
            controller=stages.controller,
            turn=stages.turn,
            llm=stages.llm,
            enabled=options.speculate,
        )
        self.replies = Replies(
            state,
            send=self.send,
            spawn=self.start_soon,
            controller=stages.controller,
            speculator=self.speculator,
            options=options,
            wait_ready=self.wait_ready,
        )
        self.turns = Turns(
            state,
            send=self.send,
            turn=stages.turn,
            gate=stages.gate,
            replies=self.replies,
            speculator=self.speculator,
            spawn=self.start_soon,
            over_bot=over_bot_rules(pipeline.interruption, options.backchannel_ms),
        )
        self.events = ClientEvents(
            state,
            send=self.send,
            spawn=self.start_soon,
            options=options,
            turns=self.turns,
            replies=self.replies,
            queue_frame=self.task.queue_frame,
            wait_ready=self.wait_ready,
        )
        self.turns.apply_turn_detection()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Serve the connection until the client leaves or the server closes it."""
        config = self.state.config
        log.info("session %s: connected (model %s)", config.id, config.model)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._writer)
                try:
                    if self.options.eager_start and not await self._start_eagerly():
                        return
                    self.send(event("session.created", session=self.state.config.to_wire()))
                    tg.start_soon(self._expire)
                    await self._reader(self.connection)
                finally:
                    self.closing = True
                    with anyio.CancelScope(shield=True):
                        await self.task.cancel("connection closed")
                        await self.speculator.close()
                    tg.cancel_scope.cancel()
        finally:
            log.info("session %s: closed", config.id)

    async def _start_eagerly(self) -> bool:
        """Load the models before ``session.created``, so that it means "ready"."""
        try:
            await self.wait_ready()
        except ProtocolError as exc:
            self.send(protocol_error_event(exc))
            self.close(1011, "the pipeline failed to start")
            with anyio.move_on_after(5):
                await self._closed.wait()
            return False
        return True

    def start_soon(
        self, fn: Callable[[*_Args], Coroutine[Any, Any, Any]], /, *args: *_Args
    ) -> None:
        """Run ``fn(*args)`` in the session's task group."""
        assert self._tg is not None
        self._tg.start_soon(fn, *args)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a server event (sent in order by the writer task)."""
        if not self.closing:
            self._out_send.send_nowait((message["type"], json.dumps(message)))

    def close(self, code: int, reason: str) -> None:
        """Close the connection after the events queued so far."""
        self._out_send.send_nowait((_CLOSE, (code, reason)))

    async def _reader(self, messages: AsyncIterable[Any]) -> None:
        try:
            async for raw in messages:
                parsed = None
                try:
                    parsed = parse_client_event(raw, max_bytes=self.options.max_message_bytes)
                    await self.events.dispatch(parsed)
                except ProtocolError as exc:
                    self.send(protocol_error_event(exc))
                except Exception as exc:
                    if _closed_connection(exc):
                        raise
                    log.exception("session %s: failed on a client event", self.state.config.id)
                    self.send(
                        error_event(
                            f"The server failed on this event: {type(exc).__name__}: {exc}",
                            type_="server_error",
                            code="server_error",
                            event_id=getattr(parsed, "event_id", None),
                        )
                    )
        except Exception as exc:
            if _closed_connection(exc):  # the peer went away
                return
            raise

    async def _writer(self) -> None:
        try:
            await self._write()
        finally:
            self._closed.set()

    async def _write(self) -> None:
        async for kind, payload in self._out_recv:
            try:
                if kind == _CLOSE:
                    await self.connection.close(*payload)
                    return
                await self.connection.send(payload)
            except Exception as exc:
                if _closed_connection(exc):
                    return
                raise

    def start_pipeline(self) -> None:
        """Start the pipeline (its models load) unless it already runs."""
        if not self._pipeline_started:
            self._pipeline_started = True
            self.start_soon(self._run_pipeline)

    async def _run_pipeline(self) -> None:
        # Sessions start their models one at a time: llama.cpp crashes the process when
        # two Llama objects are constructed at once, and loads compete for the CPU anyway.
        await self._start_gate.acquire()
        self.start_soon(self._open_start_gate)
        await self.task.run()
        if not self.closing:
            errors = "; ".join(e.message for e in self.task.errors) or "no error reported"
            self.send(
                error_event(
                    f"The session's pipeline stopped ({errors}).",
                    type_="server_error",
                    code="pipeline_stopped",
                )
            )
            self.close(1011, "pipeline stopped")

    async def _open_start_gate(self) -> None:
        st = self.state
        try:
            deadline = anyio.current_time() + self.options.start_timeout_s
            while not (st.ready.is_set() or st.start_errors or self.task.errors):
                if self.task.finished or anyio.current_time() >= deadline:
                    break
                with anyio.move_on_after(0.1):
                    await st.ready.wait()
        finally:
            self._start_gate.release()

    async def _expire(self) -> None:
        await anyio.sleep(self.options.max_duration_s)
        minutes = self.options.max_duration_s / 60
        self.send(
            error_event(
                f"Your session hit the maximum duration of {minutes:g} minutes.",
                code="session_expired",
            )
        )
        self.close(1001, "session expired")

    async def wait_ready(self, event_id: str | None = None) -> None:
        """Wait until every stage has started (models loaded)."""
        st = self.state
        if st.ready.is_set():
            return
        self.start_pipeline()
        deadline = anyio.current_time() + self.options.start_timeout_s
        while not st.start_errors and not self.task.errors:
            if anyio.current_time() >= deadline:
                break
            with anyio.move_on_after(0.25):
                await st.ready.wait()
                return
        failures = st.start_errors + [e.message for e in self.task.errors]
        errors = "; ".join(failures) or "timed out"
        raise ProtocolError(
            f"The session's models failed to start: {errors}",
            type_="server_error",
            code="pipeline_not_ready",
            event_id=event_id,
        )

    # -------------------------------------------- the pipeline's reports (SessionHooks)

    def on_pipeline_ready(self) -> None:
        """Every stage started."""
        self.state.ready.set()

    async def vad_started(self, frame: UserStartedSpeakingFrame) -> bool:
        """The VAD heard speech start (:meth:`Turns.vad_started`); the words' check
        prefills meanwhile (:meth:`Speculator.speech_started`)."""
        passed = await self.turns.vad_started(frame)
        if passed:
            self.speculator.speech_started()
        return passed

    async def vad_stopped(self, frame: UserStoppedSpeakingFrame) -> None:
        """The VAD heard speech end (:meth:`Turns.vad_stopped`)."""
        await self.turns.vad_stopped(frame)

    async def vad_paused(self, frame: UserPausedSpeakingFrame) -> bool:
        """A pause inside a turn (:meth:`Turns.held_paused`, :meth:`Speculator.vad_paused`)."""
        await self.turns.held_paused(frame)
        return await self.speculator.vad_paused(frame)

    async def vad_resumed(self, frame: UserResumedSpeakingFrame) -> bool:
        """Speech after a pause (:meth:`Turns.held_resumed`, :meth:`Speculator.vad_resumed`)."""
        await self.turns.held_resumed()
        return await self.speculator.vad_resumed(frame)

    async def on_transcription(self, frame: TranscriptionFrame) -> None:
        """The STT's transcript of a closed turn (:meth:`Turns.on_transcription`)."""
        await self.turns.on_transcription(frame)

    async def on_stage_error(self, frame: ErrorFrame) -> None:
        """A stage failed (:meth:`Replies.on_stage_error`)."""
        await self.replies.on_stage_error(frame)

    def on_llm_text(self, text: str) -> bool:
        """Model text (:meth:`Replies.on_llm_text`); True: let the TTS speak it."""
        return self.replies.on_llm_text(text)

    def on_transcript_piece(self, text: str) -> None:
        """A spoken piece's text (:meth:`Replies.on_transcript_piece`)."""
        self.replies.on_transcript_piece(text)

    def on_audio(self, frame: OutputAudioFrame) -> None:
        """Synthesised audio (:meth:`Replies.on_audio`)."""
        self.replies.on_audio(frame)

    def on_audio_flush(self) -> None:
        """A spoken piece's synthesis ended (:meth:`Replies.on_audio_flush`)."""
        self.replies.on_audio_flush()

    def on_function_call(self, frame: FunctionCallFrame) -> None:
        """A function call of the model (:meth:`Replies.on_function_call`)."""
        self.replies.on_function_call(frame)

    async def on_reply_end(self) -> None:
        """The reply is complete (:meth:`Replies.on_reply_end`)."""
        await self.replies.on_reply_end()


def _closed_connection(exc: BaseException) -> bool:
    """True for the error a WebSocket library raises when the peer has gone."""
    return type(exc).__name__.startswith("ConnectionClosed")
