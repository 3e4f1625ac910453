"""Turn handling of a session: STT turns, VAD events, commits and transcripts.

A component of :class:`~pipelines.serve.session.RealtimeSession`. Every
committed user audio item waits in ``SessionState.slots`` (in the order its
STT turn closed) for the STT's one transcript of that turn. A VAD turn that
ends is answered by :class:`~pipelines.serve.replies.Replies` (with the reply
held since a pause of it, if one fits: :mod:`pipelines.serve.speculation`).
"""

from __future__ import annotations

import logging

import anyio

from framework.frames import (
    EndOfUtteranceFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipelines.serve.commits import commit_buffer, fill_transcript
from pipelines.serve.items import Item
from pipelines.serve.over_bot import MIN_QUIET_NS, ONSET_GRACE_NS, HeldTurn, is_barge_in
from pipelines.serve.protocol import event, new_id
from pipelines.serve.replies import Replies
from pipelines.serve.session_config import SemanticVad, ServerVad
from pipelines.serve.speculation import Speculator
from pipelines.serve.stages import InputGate
from pipelines.serve.state import Send, SessionState, Spawn, Speculation
from pipelines.serve.turn_settings import turn_settings
from processors.interruption import InterruptionParams
from processors.vad.turn import TurnProcessor

log = logging.getLogger("parley.serve")

__all__ = ["Turns", "prefix_padding_ms"]


def prefix_padding_ms(td: ServerVad | SemanticVad) -> int:
    """Audio kept before the detected speech start (``semantic_vad`` has no setting: 300)."""
    return td.prefix_padding_ms if isinstance(td, ServerVad) else 300


class Turns:
    """User turns of a session (see the module docstring)."""

    def __init__(
        self,
        state: SessionState,
        *,
        send: Send,
        turn: TurnProcessor,
        gate: InputGate,
        replies: Replies,
        speculator: Speculator,
        spawn: Spawn,
        over_bot: InterruptionParams | None = None,
    ) -> None:
        """Drive ``turn`` (the VAD) and the STT turns that pass ``gate``.

        ``over_bot`` (the pipeline file's ``[interruption]`` words rule) holds turns
        that begin while the client plays a reply (:mod:`pipelines.serve.over_bot`);
        None interrupts at every speech start.
        """
        self.state = state
        self._send = send
        self._spawn = spawn
        self._over_bot = over_bot
        self.turn = turn
        """The turn processor (the pipeline file's ``[vad]``)."""
        self._gate = gate
        self._replies = replies
        self._speculator = speculator
        self._file_turn = turn.params.model_copy()

    def apply_turn_detection(self) -> bool:
        """Give the turn processor the session's turn detection (docs/turn-taking.md).

        ``server_vad``: ``silence_duration_ms`` of silence ends a turn; ``semantic_vad``:
        the Smart Turn model judges each pause, and the eagerness sets the waits
        (:data:`~pipelines.serve.turn_settings.EAGERNESS`); manual turns: the VAD only
        tracks speech. Pauses inside a VAD turn are reported for speculation
        (:mod:`pipelines.serve.speculation`) unless the server option ``speculate`` is off.
        Returns True when the Smart Turn model is needed (``semantic_vad``).
        """
        td = self.state.turn_detection
        settings = turn_settings(
            td,
            self._file_turn,
            speculate=self._speculator.enabled,
            words=self._speculator.judges_words,
        )
        self.turn.update_params(settings)
        return td is not None and td.type == "semantic_vad"

    async def open_stt_turn(self) -> None:
        """Start an STT turn the session decides on (manual turns)."""
        st = self.state
        st.stt_turn_open, st.turn_by_vad = True, False
        ns = st.input.now_ns()
        await self._gate.push_turn_frame(
            UserStartedSpeakingFrame(speech_start_ns=ns, timestamp_ns=ns)
        )

    async def close_stt_turn(
        self,
        slot: Item | HeldTurn | None,
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
        st = self.state
        # (a turn held over the bot had no speculation: Speculator.vad_paused)
        spec = None if isinstance(slot, HeldTurn) else self._speculator.take_speculation(slot)
        if spec is None:
            st.slots.append(slot)
        elif not keep_reply:
            await self._speculator.withdraw_reply(spec)
        st.stt_turn_open = st.turn_by_vad = False
        if frame is None:
            ns = st.input.now_ns()
            frame = UserStoppedSpeakingFrame(speech_end_ns=ns, timestamp_ns=ns)
        await self._gate.push_turn_frame(frame)
        return spec

    def commit_buffer(self, item_id: str | None = None) -> Item:
        """Turn the input buffer into a user audio item (committed, added, done)."""
        return commit_buffer(self.state, self._send, item_id)

    async def vad_started(self, frame: UserStartedSpeakingFrame) -> bool:
        """The VAD heard speech start; True lets the frame on to the STT."""
        st = self.state
        st.vad_speaking, st.vad_start_ns = True, frame.speech_start_ns
        td = st.turn_detection
        if td is None or st.stt_turn_open:
            return False
        start_ms = max(
            st.input.buffer_start_ms,
            st.input.ms_at(frame.speech_start_ns) - prefix_padding_ms(td),
        )
        st.input.trim_before(start_ms)
        item_id = st.vad_item_id = new_id("item")
        st.stt_turn_open, st.turn_by_vad = True, True
        self._replies.disarm_idle_timer()
        if self._over_bot is not None and td.interrupt_response and self._over_bot_at(frame):
            held = st.held = HeldTurn(item_id, start_ms, anyio.CancelScope())
            self._spawn(self._hold, held, self._over_bot.max_pause_ms / 1000)
            return True
        await self._announce(item_id, start_ms)
        return True

    def _over_bot_at(self, frame: UserStartedSpeakingFrame) -> bool:
        """Whether speech starting with ``frame`` is a remark over the bot (held).

        The bot spoke at the speech's onset: its audio played, or a reply whose audio
        had begun was between two pieces (the next still being made); and the user had
        been quiet for ``MIN_QUIET_NS`` (else they are going on after a pause).
        """
        st = self.state
        onset_ns = self._wall_ns(frame.speech_start_ns)
        if st.vad_end_ns is not None and onset_ns - st.vad_end_ns < MIN_QUIET_NS:
            return False
        onset_ns += ONSET_GRACE_NS  # (give or take the VAD's window)
        playback, response = st.playback, st.response
        if playback.playing_since(onset_ns):
            return True
        return response is not None and response.audio_deltas > 0 and playback.since_ns <= onset_ns

    def _wall_ns(self, ns: int | None) -> int:
        """Wall-clock (monotonic) time of pipeline time ``ns``: as long before now as in
        the audio clock (a client may send audio faster than real time, or pause)."""
        heard_ns = self.state.input.now_ns()
        return self.state.playback.now_ns() - (heard_ns - (ns or heard_ns))

    async def _announce(self, item_id: str, start_ms: float) -> None:
        """``speech_started`` for a turn; it cancels the response if the session says so."""
        st = self.state
        self._send(
            event(
                "input_audio_buffer.speech_started",
                audio_start_ms=round(start_ms),
                item_id=item_id,
            )
        )
        td, response = st.turn_detection, st.response
        if (
            td is not None
            and td.interrupt_response
            and response is not None
            and (response.settings.conversation == "auto")
        ):
            await self._replies.cancel_response("turn_detected")
        else:
            st.playback.stop()  # the client stops playing at speech_started

    async def _hold(self, held: HeldTurn, delay_s: float) -> None:
        """Speech over the bot that goes on for ``backchannel_ms`` is a barge-in."""
        with held.timer:
            await anyio.sleep(delay_s)
            held.expired = True
            if not held.paused:
                await self._barge_in(held)

    async def _barge_in(self, held: HeldTurn) -> None:
        if self.state.held is held:
            log.debug("session %s: speech over the bot went on: a barge-in", self._id)
            self.state.held = None
            await self._announce(held.item_id, held.start_ms)

    async def held_paused(self, frame: UserPausedSpeakingFrame) -> None:
        """The VAD reports a pause in the open turn: a held turn's speech is not going on.

        No reply is prepared for a held turn, so no words' verdict will come for its
        pause (:meth:`Speculator.vad_paused`): the turn processor is told at once, and
        the turn ends on the end-of-turn model's verdict alone.
        """
        held = self.state.held
        if held is None:
            return
        held.paused = True
        if self.turn.uses_words:  # (from a task: the turn processor is pushing this pause)
            verdict = EndOfUtteranceFrame(probability=None, speech_end_ns=frame.speech_end_ns)
            self._spawn(self.turn.judge_words, verdict)

    async def held_resumed(self) -> None:
        """Speech after that pause: past ``backchannel_ms``, a held turn is a barge-in now."""
        held = self.state.held
        if held is not None:
            held.paused = False
            if held.expired:
                await self._barge_in(held)

    @property
    def _id(self) -> str:
        return self.state.config.id

    async def vad_stopped(self, frame: UserStoppedSpeakingFrame) -> None:
        """The VAD heard speech end: commit the turn, maybe answer it."""
        st = self.state
        st.vad_speaking, st.vad_end_ns = False, self._wall_ns(frame.speech_end_ns)
        td = st.turn_detection
        if td is None or not (st.stt_turn_open and st.turn_by_vad):
            return
        item_id = st.vad_item_id or new_id("item")
        st.vad_item_id = None
        held, st.held = st.held, None
        if held is not None:  # over the bot, not announced: its words decide (_decide)
            held.timer.cancel()
            held.speech_end_ns = frame.speech_end_ns
            await self.close_stt_turn(held, frame)
            return
        self._send(
            event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=st.input.ms_at(frame.speech_end_ns),
                item_id=item_id,
            )
        )
        item = self.commit_buffer(item_id)
        spec = await self.close_stt_turn(item, frame, keep_reply=td.create_response)
        if td.create_response:
            await self._replies.answer_turn(spec, item)

    async def resume_vad_turn(self) -> None:
        """Turn detection was just switched on while the VAD hears speech: open its turn."""
        st = self.state
        if st.turn_detection is None or st.stt_turn_open or not st.vad_speaking:
            return
        frame = UserStartedSpeakingFrame(speech_start_ns=st.vad_start_ns)
        if await self.vad_started(frame):
            await self._gate.push_turn_frame(frame)

    async def on_transcription(self, frame: TranscriptionFrame) -> None:
        """The STT's transcript of the oldest closed turn."""
        st = self.state
        slot = st.slots.popleft() if st.slots else None
        text = frame.text.strip()
        if isinstance(slot, HeldTurn):
            await self._decide(slot, text)
        elif isinstance(slot, Speculation):
            await self._speculator.on_speculative_transcript(slot, text)
        elif slot is not None:
            fill_transcript(st, self._send, slot, text)

    async def _decide(self, held: HeldTurn, text: str) -> None:
        """The transcript of a turn held over the bot: a barge-in, or nothing happened."""
        st = self.state
        assert self._over_bot is not None
        assert held.speech_end_ns is not None
        end_ms = st.input.ms_at(held.speech_end_ns)
        if not is_barge_in(text, self._over_bot):
            log.info("session %s: %r over the bot: it talks on", self._id, text)
            if not st.stt_turn_open:  # (a newer turn trimmed the buffer itself)
                st.input.trim_before(end_ms)
            return
        await self._announce(held.item_id, held.start_ms)
        self._send(
            event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=held.item_id)
        )
        item = self.commit_buffer(held.item_id)
        fill_transcript(st, self._send, item, text)
        td = st.turn_detection
        if td is not None and td.create_response:
            await self._replies.answer_turn(None, item)
