"""Speculation: a VAD turn's reply prepared at a pause and held until the turn ends.

A component of :class:`~pipelines.serve.session.RealtimeSession`, the server's
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
  and then *adopts* the held reply (:meth:`~pipelines.serve.replies.Replies.answer_turn`):
  ``response.created`` and everything
  recorded so far go out at once, in the protocol's order, and the rest streams
  live. A reply that no longer fits (the session or the conversation changed
  during the pause) is withdrawn and the turn answered the ordinary way.

Under ``semantic_vad`` the pause's transcript is also judged by the words
(docs/turn-taking.md, "The words' second opinion"): a
:class:`~processors.vad.eou.TranscriptEndOfTurn` on the session's language
model (the LLM stage's loaded model, shared) gives the probability that the
user's words are finished, in a worker thread, and the turn processor gets it
(:meth:`~processors.vad.turn.TurnProcessor.judge_words`): a pause Smart Turn
calls complete ends the turn only once the words agree. The check has a
context of the model's pool of its own; when two are free it runs beside the
reply, which starts at once, so a turn that ends on the verdict finds its reply
under way; otherwise it runs first and the reply after it. While the user
speaks, both contexts get the conversation evaluated
(:meth:`~processors.vad.eou.TranscriptEndOfTurn.prefill`), so each evaluates
only the user's words at the pause.
Without speculation there is no pause transcript, so the check is off then
(:func:`~pipelines.serve.turn_settings.turn_settings`).

Every other way a turn can end (a manual commit, a switch to manual turns)
gives the pause's transcript to the item committed, or to nobody, and
withdraws the held reply.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import anyio.to_thread

from framework import Processor
from framework.frames import EndOfUtteranceFrame, UserPausedSpeakingFrame, UserResumedSpeakingFrame
from pipelines.serve.commits import fill_transcript
from pipelines.serve.items import Item, Part
from pipelines.serve.responses import ResponseSettings, model_messages, response_settings
from pipelines.serve.session_config import ResponseParams
from pipelines.serve.stages import Controller
from pipelines.serve.state import HeldReply, Send, SessionState, Spawn, Speculation
from processors.vad.eou import TranscriptEndOfTurn
from processors.vad.turn import TurnProcessor

__all__ = ["HeldReply", "Speculation", "Speculator"]

log = logging.getLogger("parley.serve")


class Speculator:
    """Speculative replies of a session (see the module docstring)."""

    def __init__(
        self,
        state: SessionState,
        *,
        send: Send,
        spawn: Spawn,
        controller: Controller,
        turn: TurnProcessor,
        llm: Processor,
        enabled: bool,
    ) -> None:
        """Speculate on ``state``'s VAD turns when ``enabled`` (the server option).

        ``turn`` gets the words' verdicts; ``llm`` is the language model stage, whose
        model judges the words when it is llama.cpp's (no check otherwise).
        """
        self.state = state
        self._send = send
        self._spawn = spawn
        self._controller = controller
        self._turn = turn
        self.enabled = enabled
        self._words = _words_detector(llm)
        self._reply_owner = getattr(llm, "affinity", None)  # the context its replies prefer
        self._stop: threading.Event | None = None  # makes a check waiting for the model give up

    @property
    def judges_words(self) -> bool:
        """True when pauses get a transcript and the words' verdict on it."""
        return self.enabled and self._words is not None

    async def close(self) -> None:
        """Stop a check waiting for the model and give the model back."""
        if self._stop is not None:
            self._stop.set()
        detector, self._words = self._words, None
        if detector is not None and detector.loaded():
            await anyio.to_thread.run_sync(detector.release)

    # ------------------------------------------------------------ turn events

    def speech_started(self) -> None:
        """The user began a turn: evaluate the conversation on the model meanwhile.

        As the cascade's end-of-utterance stage does, so that the check at the pause
        (and the reply prepared after it) evaluates only the user's words. Skipped
        while a reply holds the model (the prefill never waits for it).
        """
        st = self.state
        if not self.judges_words or not st.ready.is_set() or st.turn_detection is None:
            return
        settings = response_settings(st.config, ResponseParams())
        self._spawn(self._prefill, model_messages(settings.instructions, list(st.conversation)))

    async def _loaded_detector(self) -> TranscriptEndOfTurn | None:
        """The words' detector with its model taken (loading it if need be); None once
        the session has closed (a model taken meanwhile is given back)."""
        detector = self._words
        if detector is None or detector.loaded():
            return detector
        await anyio.to_thread.run_sync(detector.load)
        if self._words is not detector:  # the session closed meanwhile
            await anyio.to_thread.run_sync(detector.release)
            return None
        return detector

    async def _prefill(self, history: list[Any]) -> None:
        try:
            detector = await self._loaded_detector()
            if detector is None:
                return
            # The reply's context first (it is the one the user waits on), then the
            # check's, when the pauses will be judged (semantic_vad, not server_vad).
            tokens = await anyio.to_thread.run_sync(
                functools.partial(detector.prefill, history, owner=self._reply_owner)
            )
            if self._turn.uses_words:
                tokens += await anyio.to_thread.run_sync(detector.prefill, history)
        except Exception:
            log.exception("session %s: the end-of-utterance prefill failed", self.state.config.id)
            return
        log.debug("session %s: prefilled %d tokens", self.state.config.id, tokens)

    async def vad_paused(self, frame: UserPausedSpeakingFrame) -> bool:
        """A pause in a VAD turn that will be answered; True sends it on to the STT."""
        st = self.state
        td = st.turn_detection
        if not (
            self.enabled
            and td is not None
            and td.create_response  # no reply will follow: nothing to prepare
            and st.stt_turn_open
            and st.turn_by_vad
            and st.vad_item_id is not None
            and st.speculation is None
            and st.held is None  # over the bot: no reply is prepared for it yet
        ):
            return False
        spec = Speculation(
            st.vad_item_id,
            st.config,
            [item.id for item in st.conversation],
            speech_end_ns=frame.speech_end_ns,
        )
        st.speculation = spec
        st.slots.append(spec)
        log.debug("session %s: pause %s", st.config.id, _since(frame.speech_end_ns))
        return True

    async def vad_resumed(self, frame: UserResumedSpeakingFrame) -> bool:
        """The user spoke again after a pause; True sends it on to the STT (same turn)."""
        st = self.state
        spec, st.speculation = st.speculation, None
        if spec is None:
            return False
        if self._stop is not None:  # the words of that pause no longer matter
            self._stop.set()
        # The STT drops the pause's transcript if it has not pushed it yet, and pushes
        # one for the whole turn later: a slot still waiting must go.
        self._replace_slot(spec, None, remove=True)
        await self.withdraw_reply(spec)
        return True

    async def on_speculative_transcript(self, spec: Speculation, text: str) -> None:
        """The STT's transcript of a pause: start the reply if the turn will be answered."""
        st = self.state
        spec.transcribed, spec.text = True, text
        log.debug("session %s: pause transcribed %s", st.config.id, _since(spec.speech_end_ns))
        settings = response_settings(st.config, ResponseParams())
        # The verdict only matters where the turn processor waits for it (semantic_vad
        # with the words' check): under server_vad it would cost a model evaluation
        # per pause, and hold the model while the reply waits.
        if spec is st.speculation and self._turn.uses_words and self._words is not None:
            history = model_messages(settings.instructions, list(st.conversation))
            if self._words.room() >= 2 and self._will_answer(spec):
                # The model has a context for each: the reply starts now and the words
                # are judged beside it, so the turn that ends on the verdict finds its
                # reply under way (each on one core of its own).
                await self._prepare_reply(spec, text, settings)
                await self._judge_words(spec, text, history)
                return
            if self._words.busy():
                # A reply holds the model (none will be prepared then): judge meanwhile.
                self._spawn(self._judge_words, spec, text, history)
            else:
                await self._judge_words(spec, text, history)
        if self._will_answer(spec):
            await self._prepare_reply(spec, text, settings)

    def _will_answer(self, spec: Speculation) -> bool:
        """Whether the turn of ``spec`` gets the reply prepared at its pause."""
        st = self.state
        td = st.turn_detection
        return (
            spec is st.speculation
            and td is not None
            and td.create_response
            and spec.config is st.config
            and st.response is None
            and not st.deferred_auto
            and st.ready.is_set()
        )

    async def _prepare_reply(
        self, spec: Speculation, text: str, settings: ResponseSettings
    ) -> None:
        """Start the reply to the pause's ``text``, held until the turn ends."""
        st = self.state
        log.debug("session %s: reply prepared at a pause of %s", st.config.id, spec.item_id)
        pending = Item(
            spec.item_id, "message", role="user", content=[Part("input_audio", heard=text)]
        )
        spec.reply = HeldReply(settings)
        items = [*st.conversation, pending]
        await self._controller.run_llm(model_messages(settings.instructions, items), settings.tools)

    async def _judge_words(self, spec: Speculation, text: str, history: list[Any]) -> None:
        """The words' verdict on the pause of ``spec``, for the turn processor.

        The model runs in a worker thread; a resume makes it stop waiting for the
        model. A failure gives no probability: the turn ends on Smart Turn's verdict.
        """
        if self._words is None or spec.speech_end_ns is None or not self.state.ready.is_set():
            return
        probability: float | None = None
        stop = self._stop = threading.Event()
        try:
            detector = await self._loaded_detector()
            if detector is None:
                return
            if text.strip():
                probability = await anyio.to_thread.run_sync(
                    detector.probability, text, history, stop
                )
        except Exception:
            log.exception("session %s: the end-of-utterance check failed", self.state.config.id)
        if spec is not self.state.speculation or stop.is_set():
            return
        log.debug(
            "session %s: words' verdict %s on %r %s",
            self.state.config.id,
            "none" if probability is None else f"{probability:.3g}",
            text,
            _since(spec.speech_end_ns),
        )
        await self._turn.judge_words(
            EndOfUtteranceFrame(
                probability=probability, speech_end_ns=spec.speech_end_ns, text=text
            )
        )

    # --------------------------------------------------------------- turn end

    def take_speculation(self, slot: Item | None) -> Speculation | None:
        """The STT turn is being closed: the pause's transcript goes to ``slot``.

        Returns the speculation (its reply still held) when the STT closed the turn
        at a pause, None when the turn is still open in the STT (the caller closes it).
        """
        st = self.state
        spec, st.speculation = st.speculation, None
        if spec is None:
            return None
        if spec.transcribed:
            if slot is not None:
                fill_transcript(st, self._send, slot, spec.text)
        else:
            self._replace_slot(spec, slot)
        return spec

    def fits(self, spec: Speculation, item: Item) -> bool:
        """True when the reply prepared at the pause is still the one to give."""
        st = self.state
        return (
            spec.config is st.config
            and st.response is None
            and not st.deferred_auto
            and [i.id for i in st.conversation] == [*spec.conversation_ids, item.id]
        )

    async def withdraw_reply(self, spec: Speculation | None = None) -> None:
        """Drop the held reply of ``spec`` (default: the live speculation) and stop its work."""
        spec = spec or self.state.speculation
        if spec is None or spec.reply is None:
            return
        spec.reply = None
        await self._controller.interrupt()

    def _replace_slot(self, spec: Speculation, slot: Item | None, *, remove: bool = False) -> None:
        slots = self.state.slots
        for index, waiting in enumerate(slots):
            if waiting is spec:
                if remove:
                    del slots[index]
                else:
                    slots[index] = slot
                return


def _words_detector(llm: Processor) -> TranscriptEndOfTurn | None:
    """The end-of-utterance check on ``llm``'s model, or None when it is not llama.cpp's."""
    from processors.llm.llama_cpp import LlamaCppLLM

    if not isinstance(llm, LlamaCppLLM):
        return None
    # Its own context, not the reply's: with two free the check runs beside the reply.
    return TranscriptEndOfTurn(llm.params)


def _since(speech_end_ns: int | None) -> str:
    """How long ago the speech ended, for the debug log."""
    if speech_end_ns is None:
        return ""
    return f"{(time.monotonic_ns() - speech_end_ns) / 1e6:.0f} ms after the end of speech"
