"""Speech-to-speech with the OpenAI Realtime API (GA protocol) through the official SDK.

:class:`OpenAIRealtime` sits where the cascade has STT, LLM and TTS::

    transport.in -> [turn VAD] -> OpenAIRealtime -> transport.out -> assistant context

It streams the user's audio to the server (24 kHz PCM16 appends of about
``append_ms``) and pushes the model's reply downstream as the TTS stage would:
``LLMResponseStartFrame``, ``TTSStartedFrame``, ``TTSTextFrame`` pieces of the
transcript each before the audio that follows it, ``OutputAudioFrame`` (24 kHz
unless the task's output rate differs), ``TTSStoppedFrame``, ``LLMResponseEndFrame``.
User transcripts become ``TranscriptionFrame`` (and ``InterimTranscriptionFrame``).

Turns (``turn_detection``):

* ``local``: the pipeline's VAD decides. Audio is sent only during a user turn
  (plus ``prefix_padding_ms`` from before the VAD's start), committed on
  ``UserStoppedSpeakingFrame`` and answered with ``response.create``. A barge-in
  (an ``InterruptionFrame``) cancels the response.
* ``server_vad`` / ``semantic_vad``: the server decides; its speech events become
  ``UserStarted/StoppedSpeakingFrame`` (both ways, with the speech times mapped
  onto the task clock), and speech over the bot broadcasts an interruption.

After any barge-in the processor waits for the output transport's
``BotStoppedSpeakingFrame(interrupted=True, played_s=...)`` and truncates the
interrupted item at the milliseconds really played (clamped to the audio
received; skipped when nothing, or everything, was heard), so the server's
context holds only what the user heard. ``response.create`` is never sent while
a response is active: requests queue until ``response.done``.

Tool calls run in the background through a :class:`~processors.toolset.ToolSet`;
their outputs go back as ``function_call_output`` items, followed by one
``response.create`` once the calling response is done and all its calls are in.
Each ``response.done`` yields a ``MetricsFrame`` (tokens by kind and
``cost_usd`` from the price table); :attr:`OpenAIRealtime.usage` accumulates them.

A dropped connection or an expired session is reconnected with exponential
back-off (announced by :class:`~processors.realtime.frames.RealtimeConnectionFrame`);
the new session is configured again and the conversation replayed as text items.
Server ``error`` events become non-fatal ``ErrorFrame`` (code and message of the
server). The API key comes from the environment and never appears in a log,
frame, error or repr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from framework import Capabilities, Direction, Processor, handles
from framework.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioFrame,
    InterruptionFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.pricing import RealtimeUsage
from processors.realtime._client_state import ClientState
from processors.realtime._connection import ConnectionFailed, RealtimeLink
from processors.realtime._events import ServerEvents
from processors.realtime._input import AudioUplink
from processors.realtime._params import OpenAIRealtimeParams, session_config
from processors.realtime._state import heard_prefix
from processors.realtime.frames import RealtimeConnectionFrame
from processors.toolset import ToolSet

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["OpenAIRealtime", "OpenAIRealtimeParams"]

log = logging.getLogger("parley.realtime")

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class OpenAIRealtime(Processor):
    """A speech-to-speech stage on the OpenAI Realtime API; see the module docstring.

    ``context`` (an :class:`~processors.llm.context.LLMContext`) gives the
    system prompt when ``instructions`` is empty, and its messages seed the
    conversation. ``tools`` gives callable tools; without it, tools declared in
    the context are offered (their handlers imported from ``handler`` entries).
    """

    Params: ClassVar[type[OpenAIRealtimeParams]] = OpenAIRealtimeParams
    capabilities = Capabilities(server_vad=True, tools=True, speech_to_speech=True)
    """What the stage can do; an instance detects turns only when its settings say so."""

    def __init__(
        self,
        params: OpenAIRealtimeParams | None = None,
        *,
        name: str | None = None,
        context: Any = None,
        tools: ToolSet | None = None,
    ) -> None:
        """Create the processor; nothing connects before the Start frame."""
        super().__init__(name=name)
        self.params = params = params or OpenAIRealtimeParams()
        self.capabilities = replace(type(self).capabilities, server_vad=params.server_turns)
        self._context = context
        if tools is None:
            declared = list(getattr(context, "tools", None) or [])
            tools = ToolSet.from_declarations(declared) if declared else ToolSet()
        self.tools = tools
        self._price = params.price()
        self._scope: anyio.CancelScope | None = None
        self.state = ClientState(
            AudioUplink(
                self._send_audio, append_ms=params.append_ms, server_turns=params.server_turns
            )
        )
        """The conversation's state, shared with :attr:`events`."""
        self.events = ServerEvents(self, self.state, params, tools, self._price)
        """The server-event handlers."""
        self._instructions = params.instructions or str(getattr(context, "system_prompt", "") or "")
        self.state.history.seed(list(getattr(context, "messages", None) or []))

    # ------------------------------------------------------------ public state

    @property
    def usage(self) -> RealtimeUsage:
        """Token counts and cost of every response so far."""
        return self.state.usage

    @property
    def transcription_cost_usd(self) -> float:
        """Cost of the input transcription so far."""
        return self.state.transcription_cost_usd

    @property
    def task_group(self) -> TaskGroup:
        """The task group of the running task (tool calls run in it)."""
        return self.context.task_group

    @property
    def connected(self) -> bool:
        """True while a server session is open."""
        return self.state.link is not None and self.state.link.connected

    @property
    def sessions(self) -> int:
        """How many server sessions were opened (1 + reconnects)."""
        return self.state.link.generation if self.state.link else 0

    @property
    def cost_usd(self) -> float:
        """Cost so far: responses plus input transcription."""
        return self.usage.cost_usd + self.transcription_cost_usd

    def conversation_items(self) -> list[dict[str, Any]]:
        """The conversation as it would be replayed into a new session."""
        return self.state.history.items(self.params.replay_max_items)

    # --------------------------------------------------------------- lifecycle

    async def on_start(self, frame: StartFrame) -> None:
        """Open the connection; Start travels on once the first session is open.

        Like stages that load models before letting Start pass, this keeps the
        input from playing into a session that is not there yet. A link that fails
        is reported as a fatal error; after ``connect_timeout_s`` Start goes on anyway.
        """
        self.state.out_rate = frame.audio_out_sample_rate
        self.state.allow_interruptions = frame.allow_interruptions
        self.state.input.configure(frame.audio_in_sample_rate)
        self.state.link = RealtimeLink(
            self.params,
            on_open=self._on_open,
            on_event=self.events.on_event,
            on_status=self._on_status,
        )
        self._opened = anyio.Event()
        self.context.task_group.start_soon(self._run_link, name=f"{self.name}.link")
        with anyio.move_on_after(self.params.connect_timeout_s):
            await self._opened.wait()

    async def _run_link(self) -> None:
        assert self.state.link is not None
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                await self.state.link.run()
            except ConnectionFailed as exc:
                self._opened.set()
                await self._connection_frame("failed", reason=str(exc))
                await self.push_error(f"{self.name}: {exc}", code="connection_failed", fatal=True)
            except Exception as exc:
                self._opened.set()
                message = self.state.link.describe(exc)
                log.error("%s: realtime link failed: %s", self.name, message)
                await self.push_error(f"{self.name}: realtime link failed: {message}", fatal=True)

    async def _close(self) -> None:
        self.state.ended = True
        for task in self.state.tool_tasks.values():
            task.cancel()
        if self.state.link is not None:
            await self.state.link.close()
        if self._scope is not None:
            self._scope.cancel()

    async def on_end(self, frame: EndFrame) -> None:
        """Close the session: nothing is pushed after the End frame."""
        await self._close()

    async def on_cancel(self, frame: CancelFrame) -> None:
        """Close the session at once."""
        await self._close()

    async def cleanup(self) -> None:
        """Make sure the socket is closed and no task is left."""
        await self._close()

    # ------------------------------------------------------------- input side

    @handles(InputAudioFrame)
    async def _audio_in(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is DOWN and not self.state.ended:
            self.state.input.feed(frame)

    def _send_audio(self, audio_b64: str) -> bool:
        return self.state.link is not None and self.state.link.send_audio(audio_b64)

    @handles(UserStartedSpeakingFrame)
    async def _user_started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is DOWN and not self.params.server_turns and not self.state.input.in_turn:
            padding = getattr(self.params.turn_detection, "prefix_padding_ms", 300)
            self.state.input.start_turn(frame.speech_start_ns or frame.timestamp_ns, padding)
        await self.push(frame, direction)

    @handles(UserStoppedSpeakingFrame)
    async def _user_stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        if direction is not DOWN or self.params.server_turns or not self.state.input.in_turn:
            return
        turn_ms = self.state.input.end_turn()
        link = self.state.link
        if link is None or not link.connected:
            return
        if turn_ms < 100:  # the server refuses commits under 100 ms
            link.send({"type": "input_audio_buffer.clear"})
            return
        link.send({"type": "input_audio_buffer.commit"})
        self.events.request_response()

    # ------------------------------------------------------------ output side

    @handles(BotStartedSpeakingFrame)
    async def _bot_started(self, frame: BotStartedSpeakingFrame, direction: Direction) -> None:
        if direction is UP:
            self.state.bot_speaking = True
        await self.push(frame, direction)

    @handles(BotStoppedSpeakingFrame)
    async def _bot_stopped(self, frame: BotStoppedSpeakingFrame, direction: Direction) -> None:
        if direction is UP:
            self.state.bot_speaking = False
            if frame.interrupted:
                self._resolve_interruption(frame.played_s)
            else:
                self.state.playback.played_all()
        await self.push(frame, direction)

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """A barge-in from the pipeline's VAD (or anyone): stop and cancel the reply."""
        if not self.state.self_interrupting:
            await self.barge_in(server_side=False)

    async def barge_in(self, *, server_side: bool) -> None:
        """Stop the current reply; truncation follows once the played audio is known."""
        link = self.state.link
        active = self.state.responses.active
        if active is not None:
            active.muted = True
        if self.state.writer is not None and not self.state.writer.finished:
            self.state.writer.abort()
        turns = self.params.turn_detection
        server_cancels = server_side and getattr(turns, "interrupt_response", False)
        if not server_cancels and link is not None and link.connected:
            if active is not None and not active.done:
                eid = self.state.event_id()
                self.state.cancel_ids.add(eid)
                link.send(
                    {"type": "response.cancel", "event_id": eid, "response_id": active.response_id}
                )
            elif self.state.responses.state == "requested":
                self.state.cancel_on_create = True
        self.state.responses.drop_pending()
        if not self.state.bot_speaking:
            self._resolve_interruption(0.0)

    def _resolve_interruption(self, played_s: float) -> None:
        active = self.state.responses.active
        cut = self.state.playback.interrupted(played_s, active.response_id if active else None)
        if cut is None:
            return
        heard = heard_prefix(self.state.history.assistant_text(cut.item_id), cut.heard_fraction)
        self.state.history.set_assistant(cut.item_id, heard)
        link = self.state.link
        if link is not None and link.connected and cut.generation == link.generation:
            link.send(
                {
                    "type": "conversation.item.truncate",
                    "event_id": self.state.event_id(),
                    "item_id": cut.item_id,
                    "content_index": 0,
                    "audio_end_ms": cut.audio_end_ms,
                }
            )

    # ------------------------------------------------------------ connection

    async def _on_open(self, first: bool) -> None:
        """A new server session: configure it, replay the conversation, resume."""
        link = self.state.link
        assert link is not None
        self.state.responses.reset()
        self.state.playback.reset()
        self.state.lost = False
        session = session_config(
            self.params, instructions=self._instructions, tools=self.tools.realtime_tools()
        )
        link.send({"type": "session.update", "session": session})
        items = self.state.history.items(self.params.replay_max_items)
        for item in items:
            link.send({"type": "conversation.item.create", "item": item})
        self.state.input.new_session()  # a local turn in progress is sent again
        resume = self.state.cut_response and self.params.resume_after_reconnect
        self.state.cut_response = False
        if resume or self.state.responses.pending:
            self.state.responses.pending = False
            self.events.request_response()
        await self._connection_frame("connected" if first else "reconnected", replayed=len(items))
        self._opened.set()

    async def _on_status(self, state: str, info: dict[str, Any]) -> None:
        if state == "reconnecting" and not self.state.lost:
            # The session is gone with its in-flight response: end what was pushed of it,
            # and let tool calls still running ask for a response when they finish.
            self.state.lost = True
            active = self.state.responses.active
            if active is not None and not active.done:
                self.state.cut_response = not active.muted
                active.done = True
            self.state.playback.reset()
            self.state.input.lost()
            await self.events.finish_writer()
        await self._connection_frame(state, **info)

    async def _connection_frame(self, state: str, **info: Any) -> None:
        fields = {
            k: v
            for k, v in info.items()
            if k in ("attempt", "delay_s", "close_code", "reason", "expired", "replayed")
        }
        self.report_event(f"realtime_{state}", time.monotonic_ns(), **fields)
        if state in ("reconnecting", "reconnected", "failed"):
            log.warning("%s: realtime %s %s", self.name, state, fields)
        if not self.state.ended:
            await self.push(RealtimeConnectionFrame(state=state, processor=self.name, **fields))  # type: ignore[arg-type]

    async def push(self, frame: Frame, direction: Direction = DOWN) -> None:
        """Push; after the End frame went by, only system frames and the End itself go on."""
        if self.state.ended and not frame.is_system and not isinstance(frame, EndFrame):
            return
        await super().push(frame, direction)
