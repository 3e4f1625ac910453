"""Speculation: a VAD turn's reply prepared at a pause and held until the turn ends.

A mixin of :class:`~pipelines.serve.session.RealtimeSession`, the server's
version of the cascade's speculation (docs/frame-flow.md). Under
``server_vad``/``semantic_vad`` the turn processor reports a pause
(``UserPausedSpeakingFrame``) after ``pause_ms`` of silence inside a turn:

* the pause goes on to the STT, which transcribes the turn so far; a
  :class:`Speculation` takes that transcript's place in the session's slots;
* once the transcript is in, and when the turn will be answered
  (``create_response``, no response active, nothing waiting), the language
  model and the TTS start on the conversation plus the user's words. What they
  produce is recorded by a :class:`HeldReply`; the client sees none of it;
* if the user speaks again (``UserResumedSpeakingFrame``), the reply is
  withdrawn: an interruption stops generation and synthesis, the record is
  dropped, and the STT continues the turn (a transcript of the pause it had not
  pushed yet is never pushed, so the slot goes too). The client sees nothing:
  for it the turn simply goes on;
* when the turn ends, the session commits the item as usual (``speech_stopped``,
  ``committed``, ``conversation.item.added``/``done``, the transcript events)
  and then *adopts* the held reply: ``response.created`` and everything
  recorded so far go out at once, in the protocol's order, and the rest streams
  live. A reply that no longer fits (the session or the conversation changed
  during the pause) is withdrawn and the turn answered the ordinary way.

Every other way a turn can end (a manual commit, a switch to manual turns)
gives the pause's transcript to the item committed, or to nobody, and
withdraws the held reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from framework.frames import UserPausedSpeakingFrame, UserResumedSpeakingFrame
from pipelines.serve import handlers
from pipelines.serve.items import Item, Part
from pipelines.serve.responses import Response, ResponseSettings
from pipelines.serve.session_config import ResponseParams

if TYPE_CHECKING:
    from collections import deque

    from pipelines.serve.items import Conversation
    from pipelines.serve.options import ServerOptions
    from pipelines.serve.session_config import SessionConfig
    from pipelines.serve.stages import Controller

__all__ = ["HeldReply", "Speculation", "SpeculationHandling"]

log = logging.getLogger("parley.serve")


class HeldReply:
    """A speculative reply's output, recorded in order until the turn ends.

    It takes the calls the session's output hooks make on a
    :class:`~pipelines.serve.responses.Response` and :meth:`replay` makes them
    on the real one, so the events are exactly those of a live reply.
    """

    def __init__(self, settings: ResponseSettings) -> None:
        """Record a reply made with ``settings``."""
        self.settings = settings
        self.llm_chunks = 0
        self.limit_hit = False
        self.ended = False
        """The reply's end (``LLMResponseEndFrame``) has reached the output."""
        self.has_audio = False
        self._calls: list[tuple[str, tuple[Any, ...]]] = []

    def transcript(self, text: str) -> None:
        """A spoken piece's text."""
        self._calls.append(("transcript", (text,)))

    def text(self, text: str) -> None:
        """Text of a text-only reply."""
        self._calls.append(("text", (text,)))

    def audio(self, pcm: bytes, sample_rate: int) -> None:
        """Synthesised audio."""
        self.has_audio = self.has_audio or bool(pcm)
        self._calls.append(("audio", (bytes(pcm), sample_rate)))

    def flush_audio(self) -> None:
        """The end of a spoken piece's synthesis."""
        self._calls.append(("flush_audio", ()))

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        """A function call of the model."""
        self._calls.append(("function_call", (call_id, name, arguments)))

    @property
    def recorded(self) -> int:
        """How many output calls are waiting to be replayed."""
        return len(self._calls)

    def replay(self, response: Response) -> None:
        """Make every recorded call on ``response``, in order."""
        response.llm_chunks = self.llm_chunks
        response.limit_hit = self.limit_hit
        for name, args in self._calls:
            getattr(response, name)(*args)
        self._calls.clear()


@dataclass(eq=False)
class Speculation:
    """One pause of a VAD turn: its transcript and the reply prepared from it."""

    item_id: str
    """The id the turn's item will have (the one ``speech_started`` announced)."""
    config: SessionConfig
    """The session configuration at the pause; a later ``session.update`` voids the reply."""
    conversation_ids: list[str] = field(default_factory=list)
    transcribed: bool = False
    text: str = ""
    reply: HeldReply | None = None


class SpeculationHandling:
    """Speculative replies of a session (see the module docstring)."""

    config: SessionConfig
    options: ServerOptions
    conversation: Conversation
    controller: Controller
    response: Response | None
    deferred_auto: bool
    audio_produced: bool
    stt_turn_open: bool
    turn_by_vad: bool
    vad_item_id: str | None
    ready: anyio.Event
    slots: deque[Item | Speculation | None]
    speculation: Speculation | None = None
    """The pause of the open VAD turn the STT has transcribed (None outside one)."""

    if TYPE_CHECKING:  # provided by the session and the other mixins

        @property
        def turn_detection(self) -> Any: ...
        def start_soon(self, fn: Any, *args: Any) -> None: ...
        def fill_transcript(self, slot: Item, text: str) -> None: ...
        async def on_reply_end(self) -> None: ...
        async def limit_reached(self, response: Response) -> None: ...

    # ------------------------------------------------------------ turn events

    async def vad_paused(self, frame: UserPausedSpeakingFrame) -> bool:
        """A pause in a VAD turn that will be answered; True sends it on to the STT."""
        td = self.turn_detection
        if not (
            self.options.speculate
            and td is not None
            and td.create_response  # no reply will follow: nothing to prepare
            and self.stt_turn_open
            and self.turn_by_vad
            and self.vad_item_id is not None
            and self.speculation is None
        ):
            return False
        spec = Speculation(self.vad_item_id, self.config, [item.id for item in self.conversation])
        self.speculation = spec
        self.slots.append(spec)
        return True

    async def vad_resumed(self, frame: UserResumedSpeakingFrame) -> bool:
        """The user spoke again after a pause; True sends it on to the STT (same turn)."""
        spec, self.speculation = self.speculation, None
        if spec is None:
            return False
        # The STT drops the pause's transcript if it has not pushed it yet, and pushes
        # one for the whole turn later: a slot still waiting must go.
        self._replace_slot(spec, None, remove=True)
        await self.withdraw_reply(spec)
        return True

    async def on_speculative_transcript(self, spec: Speculation, text: str) -> None:
        """The STT's transcript of a pause: start the reply if the turn will be answered."""
        spec.transcribed, spec.text = True, text
        td = self.turn_detection
        if (
            spec is not self.speculation
            or td is None
            or not td.create_response
            or spec.config is not self.config
            or self.response is not None
            or self.deferred_auto
            or not self.ready.is_set()
        ):
            return
        log.debug("session %s: reply prepared at a pause of %s", self.config.id, spec.item_id)
        settings = handlers.response_settings(self, ResponseParams())  # type: ignore[arg-type]
        pending = Item(
            spec.item_id, "message", role="user", content=[Part("input_audio", heard=text)]
        )
        spec.reply = HeldReply(settings)
        items = [*self.conversation, pending]
        await self.controller.run_llm(
            handlers.model_messages(settings.instructions, items), settings.tools
        )

    # --------------------------------------------------------------- turn end

    def take_speculation(self, slot: Item | None) -> Speculation | None:
        """The STT turn is being closed: the pause's transcript goes to ``slot``.

        Returns the speculation (its reply still held) when the STT closed the turn
        at a pause, None when the turn is still open in the STT (the caller closes it).
        """
        spec, self.speculation = self.speculation, None
        if spec is None:
            return None
        if spec.transcribed:
            if slot is not None:
                self.fill_transcript(slot, spec.text)
        else:
            self._replace_slot(spec, slot)
        return spec

    async def answer_turn(self, spec: Speculation | None, item: Item) -> None:
        """The VAD turn that produced ``item`` ended: answer it, with the held reply if it fits."""
        reply = spec.reply if spec is not None else None
        if spec is None or reply is None or not self._fits(spec, item):
            if spec is not None:
                log.debug(
                    "session %s: %s answered at its end (transcribed at the pause: %s, "
                    "reply prepared: %s)",
                    self.config.id,
                    item.id,
                    spec.transcribed,
                    reply is not None,
                )
                await self.withdraw_reply(spec)
            await handlers.create_response(self, None, auto=True)  # type: ignore[arg-type]
            return
        log.debug(
            "session %s: %s answered with the reply held since the pause (%d calls, ended: %s)",
            self.config.id,
            item.id,
            reply.recorded,
            reply.ended,
        )
        spec.reply = None
        response = handlers.open_response(  # response.created, rate_limits.updated
            self,  # type: ignore[arg-type]
            reply.settings,
            list(self.conversation),
        )
        self.audio_produced = self.audio_produced or (reply.has_audio and reply.settings.audio)
        reply.replay(response)
        if reply.limit_hit:
            self.start_soon(self.limit_reached, response)
        elif reply.ended:
            await self.on_reply_end()

    def _fits(self, spec: Speculation, item: Item) -> bool:
        """True when the reply prepared at the pause is still the one to give."""
        return (
            spec.config is self.config
            and self.response is None
            and not self.deferred_auto
            and [i.id for i in self.conversation] == [*spec.conversation_ids, item.id]
        )

    async def withdraw_reply(self, spec: Speculation | None = None) -> None:
        """Drop the held reply of ``spec`` (default: the live speculation) and stop its work."""
        spec = spec or self.speculation
        if spec is None or spec.reply is None:
            return
        spec.reply = None
        await self.controller.interrupt()

    def held_reply(self) -> HeldReply | None:
        """The reply being prepared for the open turn, if one is."""
        spec = self.speculation
        return spec.reply if spec is not None else None

    def _replace_slot(self, spec: Speculation, slot: Item | None, *, remove: bool = False) -> None:
        for index, waiting in enumerate(self.slots):
            if waiting is spec:
                if remove:
                    del self.slots[index]
                else:
                    self.slots[index] = slot
                return
