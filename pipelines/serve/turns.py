"""Turn handling of a session: STT turns, VAD events, commits, transcripts, idle timeout.

A mixin of :class:`~pipelines.serve.session.RealtimeSession`, kept apart so each
module stays readable. Every committed user audio item waits in ``slots`` (in
the order its STT turn closed) for the STT's one transcript of that turn.

``idle_timeout_ms`` (server_vad): after a completed response, when neither
speech nor a new response came for ``idle_timeout_ms`` plus the response's
audio duration (the client's playback), the session sends
``input_audio_buffer.timeout_triggered``, commits the buffered audio (silence,
possibly empty) as a user item and creates a response.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from framework.frames import TranscriptionFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from pipelines.serve import handlers
from pipelines.serve.items import Item, Part
from pipelines.serve.protocol import event, new_id
from pipelines.serve.session_config import ServerVad
from pipelines.serve.speculation import Speculation
from pipelines.serve.turn_settings import preload_turn_model, turn_settings
from processors.vad.turn import TurnParams, TurnProcessor

if TYPE_CHECKING:
    from pipelines.serve.audio import InputAudio
    from pipelines.serve.items import Conversation
    from pipelines.serve.options import ServerOptions
    from pipelines.serve.responses import Response
    from pipelines.serve.session_config import SessionConfig
    from pipelines.serve.stages import InputGate

__all__ = ["TurnHandling"]


class TurnHandling:
    """User turns of a session (see the module docstring)."""

    config: SessionConfig
    options: ServerOptions
    input: InputAudio
    conversation: Conversation
    gate: InputGate
    stages: dict[str, Any]
    response: Response | None
    stt_turn_open: bool
    turn_by_vad: bool
    vad_item_id: str | None
    vad_speaking: bool = False
    """What the VAD last said, in any mode (manual turns ignore it)."""
    vad_start_ns: int | None = None
    slots: deque[Item | Speculation | None]
    transcribed: dict[str, anyio.Event]
    _idle_scope: anyio.CancelScope | None
    _file_turn: TurnParams | None = None

    if TYPE_CHECKING:  # provided by the session and the other mixin

        def send(self, message: dict[str, Any]) -> None: ...
        def start_soon(self, fn: Any, *args: Any) -> None: ...
        async def cancel_response(self, reason: str) -> None: ...
        def take_speculation(self, slot: Item | None) -> Speculation | None: ...
        async def answer_turn(self, spec: Speculation | None, item: Item) -> None: ...
        async def on_speculative_transcript(self, spec: Speculation, text: str) -> None: ...
        async def withdraw_reply(self, spec: Speculation | None = None) -> None: ...

    if TYPE_CHECKING:

        @property
        def running(self) -> bool: ...

    @property
    def turn_detection(self) -> Any:
        """The session's turn detection settings (None: manual turns)."""
        return self.config.audio.input.turn_detection

    def apply_turn_detection(self) -> None:
        """Give the turn processor the session's turn detection (docs/turn-taking.md).

        ``server_vad``: ``silence_duration_ms`` of silence ends a turn; ``semantic_vad``:
        the Smart Turn model judges each pause, and the eagerness sets the waits
        (:data:`~pipelines.serve.turn_settings.EAGERNESS`); manual turns: the VAD only
        tracks speech. Pauses inside a VAD turn are reported for speculation
        (:mod:`pipelines.serve.speculation`) unless the server option ``speculate`` is off.
        """
        turn = self.stages["turn"]
        if not isinstance(turn, TurnProcessor):
            return
        if self._file_turn is None:
            self._file_turn = turn.params.model_copy()
        td = self.turn_detection
        turn.update_params(turn_settings(td, self._file_turn, speculate=self.options.speculate))
        if td is not None and td.type == "semantic_vad" and self.running:
            self.start_soon(preload_turn_model)

    async def open_stt_turn(self) -> None:
        """Start an STT turn the session decides on (manual turns)."""
        self.stt_turn_open, self.turn_by_vad = True, False
        ns = self.input.now_ns()
        await self.gate.push_turn_frame(
            UserStartedSpeakingFrame(speech_start_ns=ns, timestamp_ns=ns)
        )

    async def close_stt_turn(
        self,
        slot: Item | None,
        frame: UserStoppedSpeakingFrame | None = None,
        *,
        keep_reply: bool = False,
    ) -> Speculation | None:
        """End the STT turn; its transcript will go to ``slot`` (None: discard it).

        When the STT already closed it at a pause, the pause's transcript goes to
        ``slot`` instead, and the pause's :class:`Speculation` is returned; a reply
        it holds is withdrawn unless ``keep_reply`` (the caller then adopts it or
        withdraws it).
        """
        spec = self.take_speculation(slot)
        if spec is None:
            self.slots.append(slot)
        elif not keep_reply:
            await self.withdraw_reply(spec)
        self.stt_turn_open = self.turn_by_vad = False
        if frame is None:
            ns = self.input.now_ns()
            frame = UserStoppedSpeakingFrame(speech_end_ns=ns, timestamp_ns=ns)
        await self.gate.push_turn_frame(frame)
        return spec

    def commit_buffer(self, item_id: str | None = None) -> Item:
        """Turn the input buffer into a user audio item (committed, added, done)."""
        data, _, _ = self.input.take()
        item = Item(
            id=item_id or new_id("item"),
            type="message",
            role="user",
            content=[
                Part(type="input_audio", audio=bytearray(data), audio_format=self.input.format)
            ],
        )
        previous = self.conversation.add(item)
        self.transcribed[item.id] = anyio.Event()
        self.send(event("input_audio_buffer.committed", item_id=item.id, previous_item_id=previous))
        self.send(event("conversation.item.added", previous_item_id=previous, item=item.wire()))
        self.send(event("conversation.item.done", previous_item_id=previous, item=item.wire()))
        return item

    async def vad_started(self, frame: UserStartedSpeakingFrame) -> bool:
        """The VAD heard speech start; True lets the frame on to the STT."""
        self.vad_speaking, self.vad_start_ns = True, frame.speech_start_ns
        td = self.turn_detection
        if td is None or self.stt_turn_open:
            return False
        padding = getattr(td, "prefix_padding_ms", 300)
        start_ms = max(
            self.input.buffer_start_ms, self.input.ms_at(frame.speech_start_ns) - padding
        )
        self.input.trim_before(start_ms)
        self.vad_item_id = new_id("item")
        self.stt_turn_open, self.turn_by_vad = True, True
        self.disarm_idle_timer()
        self.send(
            event(
                "input_audio_buffer.speech_started",
                audio_start_ms=round(start_ms),
                item_id=self.vad_item_id,
            )
        )
        response = self.response
        if (
            td.interrupt_response
            and response is not None
            and (response.settings.conversation == "auto")
        ):
            await self.cancel_response("turn_detected")
        return True

    async def vad_stopped(self, frame: UserStoppedSpeakingFrame) -> None:
        """The VAD heard speech end: commit the turn, maybe answer it."""
        self.vad_speaking = False
        td = self.turn_detection
        if td is None or not (self.stt_turn_open and self.turn_by_vad):
            return
        item_id = self.vad_item_id or new_id("item")
        self.vad_item_id = None
        self.send(
            event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=self.input.ms_at(frame.speech_end_ns),
                item_id=item_id,
            )
        )
        item = self.commit_buffer(item_id)
        spec = await self.close_stt_turn(item, frame, keep_reply=td.create_response)
        if td.create_response:
            await self.answer_turn(spec, item)

    async def resume_vad_turn(self) -> None:
        """Turn detection was just switched on while the VAD hears speech: open its turn."""
        if self.turn_detection is None or self.stt_turn_open or not self.vad_speaking:
            return
        frame = UserStartedSpeakingFrame(speech_start_ns=self.vad_start_ns)
        if await self.vad_started(frame):
            await self.gate.push_turn_frame(frame)

    async def on_transcription(self, frame: TranscriptionFrame) -> None:
        """The STT's transcript of the oldest closed turn."""
        slot = self.slots.popleft() if self.slots else None
        text = frame.text.strip()
        if isinstance(slot, Speculation):
            await self.on_speculative_transcript(slot, text)
        elif slot is not None:
            self.fill_transcript(slot, text)

    def fill_transcript(self, slot: Item, text: str) -> None:
        """Give a committed user audio item the STT's transcript (and report it if asked)."""
        part = next((p for p in slot.content if p.type == "input_audio"), None)
        if part is not None:
            part.heard = text
            if self.config.audio.input.transcription is not None:
                part.transcript = text
                ids = {"item_id": slot.id, "content_index": slot.content.index(part)}
                if text:
                    self.send(
                        event(
                            "conversation.item.input_audio_transcription.delta", **ids, delta=text
                        )
                    )
                self.send(
                    event(
                        "conversation.item.input_audio_transcription.completed",
                        **ids,
                        transcript=text,
                        usage={"type": "duration", "seconds": round(part.duration_ms / 1000, 3)},
                    )
                )
        waiter = self.transcribed.pop(slot.id, None)
        if waiter is not None:
            waiter.set()

    # ---------------------------------------------------------------- idle timeout

    def arm_idle_timer(self, response: Response) -> None:
        """After a completed response: start the idle timeout, if the session has one."""
        self.disarm_idle_timer()
        td = self.turn_detection
        if not isinstance(td, ServerVad) or td.idle_timeout_ms is None:
            return
        played_ms = sum(p.duration_ms for item in response.output for p in item.content)
        scope = self._idle_scope = anyio.CancelScope()
        self.start_soon(self._idle_wait, scope, (td.idle_timeout_ms + played_ms) / 1000)

    def disarm_idle_timer(self) -> None:
        """Speech, a commit or a new response came: no idle timeout."""
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self._idle_scope = None

    async def _idle_wait(self, scope: anyio.CancelScope, delay_s: float) -> None:
        with scope:
            await anyio.sleep(delay_s)
            self._idle_scope = None
            if self.response is not None or self.stt_turn_open:
                return
            item_id = new_id("item")
            self.send(
                event(
                    "input_audio_buffer.timeout_triggered",
                    audio_start_ms=round(self.input.buffer_start_ms),
                    audio_end_ms=round(self.input.clock_ms),
                    item_id=item_id,
                )
            )
            item = self.commit_buffer(item_id)
            item.content[0].heard = ""
            self.transcribed.pop(item.id).set()
            await handlers.create_response(self, None, auto=True)  # type: ignore[arg-type]
