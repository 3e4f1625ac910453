"""The paced output transport.

OutputTransport is the output side of ``docs/frame-flow.md``: a queued
stage that cuts :class:`~framework.frames.OutputAudioFrame` audio into chunks at
the task's output rate and hands each to :meth:`OutputTransport.write_chunk` at
the moment it is due on an absolute schedule (chunk ``k`` of a stretch is due at
the stretch's anchor plus ``k`` chunks, so lateness never accumulates; the
schedule is re-anchored to *now* after the queue ran dry). The waits go through the
event loop's shared :class:`~processors.transports.pacing.Pacer`, so all paced
streams of a process share one timer (a chunk is written at most one pacer tick
after it is due, never before). It announces the bot
speaking both ways, holds each :class:`~framework.frames.TTSTextFrame` until its
audio has played, and on an interruption stops within one chunk and passes on
only the words that were heard. A :class:`~framework.frames.BotAudioPauseFrame`
(a possible barge-in) holds the audio from the next chunk on, keeping the rest,
until a :class:`~framework.frames.BotAudioResumeFrame`, an interruption or the
pause's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, ClassVar

import anyio

from framework import Direction, Frame, Processor, handles
from framework.frames import (
    BotAudioPauseFrame,
    BotAudioResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ControlFrame,
    DataFrame,
    EndFrame,
    InterruptionFrame,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    OutputAudioFrame,
    StartFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from processors.transports.pacing import Pacer, Ticket, current_pacer

if TYPE_CHECKING:
    from framework.audio import StreamResampler
    from framework.frames import CancelFrame

from processors.transports.base import OutputTransportParams, heard_text

__all__ = ["OutputTransport"]

log = logging.getLogger("parley")
DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


class OutputTransport(Processor):
    """Base of transports that play the bot; override :meth:`write_chunk`.

    :attr:`reply_first_audio_ns` lists, per reply, the play time of its first
    audio sample. The same moments are reported to event observers as
    ``bot_first_audio`` events, and the end of each stretch of bot audio as
    ``bot_audio_stopped`` (``t_ns`` is the end of the last sample written).
    """

    Params: ClassVar[type[OutputTransportParams]] = OutputTransportParams

    def __init__(self, params: OutputTransportParams | None = None, *, name: str | None = None):
        """Create the transport; ``params`` defaults to :attr:`Params` defaults."""
        super().__init__(name=name, queued=True)
        self.params = params or self.Params()
        self.reply_first_audio_ns: list[int] = []
        self._rate = 0
        self._chunk_samples = 0
        self._pending = bytearray()  # converted audio not yet played, at the output rate
        self._resampler: StreamResampler | None = None
        self._resampler_dirty = False
        self._scheduled = False  # False: the next chunk re-anchors the schedule to now
        self._anchor_ns = 0
        self._anchor_samples = 0
        self._audio_end_ns = 0  # when the last written sample finishes playing
        self._speaking = False
        self._stretch_samples = 0
        self._held: TTSTextFrame | None = None
        self._piece_samples = 0
        self._reply_pending = True
        self._markers_seen = False
        self._arrival: anyio.Event | None = None
        self._user_floor = False
        self._paused: anyio.Event | None = None  # set on resume; None when not paused
        self._pause_deadline_ns = 0
        self._in_reply = False  # between a reply's start and end markers
        self._floor_free: anyio.Event | None = None
        self._interruptions = 0  # a chunk waited for across an interruption is not played
        self._pacer: Pacer | None = None
        # Chunks written from the pacer's tick (see write_chunk_now): the batch's one
        # ticket (taken again for every chunk), and how many chunks the batch wrote.
        self._direct = type(self).write_chunk is OutputTransport.write_chunk
        self._ticket: Ticket | None = None
        self._tick_written = 0

    # ------------------------------------------------------------ for subclasses

    @property
    def sample_rate(self) -> int:
        """The task's output rate (0 before the Start frame)."""
        return self._rate

    @property
    def speaking(self) -> bool:
        """True while bot audio is playing."""
        return self._speaking

    @property
    def pacer(self) -> Pacer:
        """The clock chunks are timed on: the event loop's shared pacer, taken on first use."""
        if self._pacer is None:
            self._pacer = current_pacer()
        return self._pacer

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Play one chunk of mono PCM16 at :attr:`sample_rate`, first sample at ``play_ns``.

        Called when the chunk is due. The base discards the audio (a null output).
        An output whose write never waits overrides :meth:`write_chunk_now` instead.
        """

    def write_chunk_now(self, pcm: bytes, play_ns: int) -> None:
        """The same as :meth:`write_chunk`, for an output whose write never waits.

        Used when a subclass does not override :meth:`write_chunk`: the chunks of a
        piece of audio, after the first of a stretch, are then written from the
        pacer's tick itself, and the output's task wakes once per piece instead of
        once per chunk. Called from the event loop, not a task: it must be quick and
        may not await (an exception ends the piece and is raised in the task). The
        base discards the audio.
        """

    def unheard_s(self) -> float:
        """Seconds of the audio written so far that the listener has not heard yet.

        Asked at an interruption, to tell how much of the reply was heard. The base
        counts a chunk as heard as it plays (the rest of the chunk playing now is not);
        a transport whose peer reports what it played (Twilio marks) overrides this.
        """
        if not self._speaking:
            return 0.0
        return max(0, self._audio_end_ns - self.pacer.now_ns()) / 1e9

    async def until_heard(self) -> None:
        """Wait until the listener has heard the audio written so far.

        Called before a piece's text is passed on as heard, when no next piece waits
        to play. The base's audio is heard once its play time is over, so it returns
        at once; a transport whose peer plays with a delay and reports it (Twilio
        marks) waits for the report here, so an interruption meanwhile still cuts
        the piece's text to what was heard.
        """

    async def on_speaking_changed(self, speaking: bool, t_ns: int) -> None:
        """Called when bot audio starts (at its play time) or stops (at its end)."""

    async def on_output_end(self) -> None:
        """Called when the End frame arrives, after all audio before it has played."""

    # --------------------------------------------------------------- lifecycle

    async def on_start(self, frame: StartFrame) -> None:
        """Take the task's output rate."""
        self._rate = frame.audio_out_sample_rate
        self._chunk_samples = max(1, round(self._rate * self.params.chunk_ms / 1000))

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Stop playing, pass on the words heard of the current piece, announce the stop."""
        held, rate = self._held, self._rate or 1
        left = len(self._pending) / 2 / rate  # audio of the current piece not played
        same_piece, dropped_audio = True, False
        for item, direction in dropped:
            if direction is not DOWN:
                continue
            if isinstance(item, TTSTextFrame):
                same_piece = False
            elif isinstance(item, OutputAudioFrame):
                dropped_audio = True
                left += item.duration_s if same_piece else 0.0
        unplayed = self.unheard_s()
        text = ""
        if held is not None and self._piece_samples > 0:
            played = max(0.0, self._piece_samples / rate - unplayed)
            left += unplayed
            text = heard_text(held.text, played / (played + left) if played + left else 1.0)
        # Cut short, unless the audio had already finished and nothing was waiting.
        cut = held is not None or dropped_audio or bool(self._pending) or unplayed > 0
        self._interruptions += 1
        self._reset()  # before any await: the worker may go on meanwhile
        self._lift_pause()
        self._in_reply = False
        if text:
            await self.push(TTSTextFrame(text=text), DOWN)
        await self._stop_speaking(interrupted=cut, unplayed_s=unplayed)
        self._reply_pending = True

    async def on_cancel(self, frame: CancelFrame) -> None:
        """Drop everything; nothing more is played."""
        self._reset()
        self._speaking = False

    def _reset(self) -> None:
        self._drop_ticket()  # nothing is written from the tick after this
        self._pending.clear()
        if self._resampler is not None:
            self._resampler.reset()
        self._resampler_dirty = False
        self._held = None
        self._piece_samples = 0
        self._scheduled = False

    async def receive(self, frame: Frame, direction: Direction) -> None:
        """Queue or dispatch ``frame``; wake a worker waiting to see if the queue runs dry."""
        await super().receive(frame, direction)
        arrival = self._arrival
        if arrival is not None and not frame.is_system:
            self._arrival = None
            arrival.set()

    # ------------------------------------------------------------ frame handlers

    @handles(UserStartedSpeakingFrame)
    async def _user_started(self, frame: UserStartedSpeakingFrame, direction: Direction) -> None:
        if direction is DOWN:
            self._user_floor = True
        await self.push(frame, direction)

    @handles(UserStoppedSpeakingFrame)
    async def _user_stopped(self, frame: UserStoppedSpeakingFrame, direction: Direction) -> None:
        if direction is DOWN:
            self._user_floor = False
            free, self._floor_free = self._floor_free, None
            if free is not None:
                free.set()
        await self.push(frame, direction)

    async def _wait_for_floor(self) -> None:
        """Hold a reply that is about to start while the user is still speaking."""
        if not (self._user_floor and self.params.hold_while_user_speaks):
            return
        if self._floor_free is None:
            self._floor_free = anyio.Event()
        with anyio.move_on_after(self.params.max_hold_s):
            await self._floor_free.wait()
        self._scheduled = False  # the schedule starts when the reply does

    @handles(BotAudioPauseFrame)
    async def _pause(self, frame: BotAudioPauseFrame, direction: Direction) -> None:
        if direction is DOWN:
            if self._paused is None:
                self._paused = anyio.Event()
            self._pause_deadline_ns = time.monotonic_ns() + int(frame.timeout_s * 1e9)
        await self.push(frame, direction)

    @handles(BotAudioResumeFrame)
    async def _resume(self, frame: BotAudioResumeFrame, direction: Direction) -> None:
        if direction is DOWN:
            self._lift_pause()
        await self.push(frame, direction)

    def _lift_pause(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.set()

    async def _hold_while_paused(self) -> None:
        """Write nothing more until the pause is lifted (or times out).

        Called after a chunk is written, so the audio stops at most one chunk after
        the pause came. The audio not played stays queued; the schedule restarts at
        the end of the pause.
        """
        paused, interruptions = self._paused, self._interruptions
        if paused is not None:
            if self._speaking:  # the end of the last sample written
                self.report_event("bot_audio_paused", self._audio_end_ns)
            with anyio.move_on_after(
                max(0.0, (self._pause_deadline_ns - time.monotonic_ns()) / 1e9)
            ):
                await paused.wait()
            if self._paused is paused:  # timed out
                self._paused = None
            if self._speaking and interruptions == self._interruptions:  # not cut off
                self.report_event("bot_audio_resumed", time.monotonic_ns())
        self._scheduled = False  # the next chunk starts a new schedule, from now

    @handles(OutputAudioFrame)
    async def _audio(self, frame: OutputAudioFrame, direction: Direction) -> None:
        if direction is UP:
            await self._pass_up(frame)
            return
        self._pending += self._convert(frame)
        chunk_bytes = 2 * self._chunk_samples
        while len(self._pending) >= chunk_bytes:
            if not await self._play_from_tick():
                await self._play_chunk()
        await self._idle_tail()

    @handles(TTSTextFrame)
    async def _text(self, frame: TTSTextFrame, direction: Direction) -> None:
        if direction is UP:
            await self._pass_up(frame)
            return
        await self._finish_playback(release=True, confirm=False)
        self._held = frame
        self._piece_samples = 0
        await self._idle_tail()

    @handles(LLMResponseStartFrame, TTSStartedFrame)
    async def _reply_start(self, frame: Frame, direction: Direction) -> None:
        if direction is DOWN:
            self._markers_seen = True
            self._reply_pending = True
            self._in_reply = True
        await self._ordered(frame, direction)

    @handles(LLMResponseEndFrame, TTSStoppedFrame)
    async def _reply_end(self, frame: Frame, direction: Direction) -> None:
        if direction is UP:
            await self._pass_up(frame)
            return
        await self._finish_playback(release=True)
        self._in_reply = False  # before a stop is announced: the reply is over
        await self.push(frame, direction)
        await self._idle_tail()

    @handles(EndFrame)
    async def _end(self, frame: EndFrame, direction: Direction) -> None:
        await self._finish_playback(release=True)
        await self._stop_speaking(interrupted=False)
        await self.on_output_end()
        await self.push(frame, direction)

    @handles(DataFrame, ControlFrame)
    async def _ordered(self, frame: Frame, direction: Direction) -> None:
        if direction is UP:
            await self._pass_up(frame)
            return
        await self._finish_playback(release=True)
        await self.push(frame, direction)
        await self._idle_tail()

    async def _pass_up(self, frame: Frame) -> None:
        await self.push(frame, UP)
        await self._idle_tail()

    # ---------------------------------------------------------------- playback

    def _convert(self, frame: OutputAudioFrame) -> bytes:
        audio = frame.audio
        if frame.num_channels != 1:
            from framework.audio import to_mono

            audio = to_mono(audio, frame.num_channels)
        if frame.sample_rate == self._rate:  # the common case: no import on this path
            self._flush_resampler()
            return audio
        from framework.audio import StreamResampler

        resampler = self._resampler
        if resampler is None or resampler.from_rate != frame.sample_rate:
            self._flush_resampler()
            quality = self.params.resample_quality
            resampler = self._resampler = StreamResampler(frame.sample_rate, self._rate, 1, quality)
        self._resampler_dirty = True
        return resampler.process(audio)

    def _flush_resampler(self) -> None:
        if self._resampler is not None and self._resampler_dirty:
            self._pending += self._resampler.flush()
            self._resampler_dirty = False

    def _next_due(self) -> int:
        return self._anchor_ns + self._anchor_samples * 1_000_000_000 // self._rate

    def _on_schedule(self, now: int, due: int) -> int:
        """When the chunk due at ``due`` plays, seen at ``now``.

        Behind by more than ``max_lag_ms`` (the loop stalled), or with no schedule
        yet, the schedule starts afresh from now instead of bursting to catch up.
        """
        if not self._scheduled or now - due > self.params.max_lag_ms * 1e6:
            self._anchor_ns, self._anchor_samples, self._scheduled = now, 0, True
            return now
        return due

    def _take_chunk(self) -> bytes:
        """The next chunk from the buffer (padded with silence), accounted as played."""
        size = 2 * self._chunk_samples
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        if len(chunk) < size:
            chunk += bytes(size - len(chunk))
        self._anchor_samples += self._chunk_samples
        self._audio_end_ns = self._next_due()
        self._stretch_samples += self._chunk_samples
        if self._held is not None:
            self._piece_samples += self._chunk_samples
        return chunk

    async def _play_chunk(self) -> None:
        """Wait until the next chunk is due (cancellable), then write it.

        An interruption cancels the wait; if the wait ended just before the
        cancellation could land, the interruption counter tells, and nothing is played.
        """
        interruptions = self._interruptions
        if not self._speaking:
            await self._wait_for_floor()
        pacer = self.pacer
        now = pacer.now_ns()
        due = self._next_due()
        if self._scheduled and due > now:
            await pacer.sleep_until(due)
            now = pacer.now_ns()
        if interruptions != self._interruptions or not self._pending:
            return
        due = self._on_schedule(now, due)
        chunk = self._take_chunk()
        started = not self._speaking
        self._speaking = True
        if self._reply_pending:
            self._reply_pending = False
            self.reply_first_audio_ns.append(due)
            self.report_event("bot_first_audio", due, reply=len(self.reply_first_audio_ns))
        if self._direct:
            self.write_chunk_now(chunk, due)
        else:
            await self.write_chunk(chunk, due)
        if started:
            self._stretch_samples = self._chunk_samples
            await self.push(BotStartedSpeakingFrame(), DOWN)
            await self.push(BotStartedSpeakingFrame(), UP)
            await self.on_speaking_changed(True, due)
        if self._paused is not None:  # a possible barge-in: hold the rest of the reply
            await self._hold_while_paused()

    async def _play_from_tick(self) -> bool:
        """Write the buffered whole chunks from the pacer's tick; False if none was.

        For outputs with :meth:`write_chunk_now` while a stretch plays on schedule:
        each tick writes the chunk due and takes a ticket for the next, and this
        task wakes once, when the buffer holds less than a chunk. A tick behind by
        more than ``max_lag_ms`` (the loop stalled) re-anchors the schedule to now,
        as :meth:`_play_chunk` does; a pause ends the batch after the chunk due, and
        the task then holds the rest.
        """
        pacer = self.pacer
        if not (
            self._direct
            and pacer.shared
            and self._speaking
            and self._scheduled
            and self._paused is None
            and not self._reply_pending
        ):
            return False
        done = asyncio.get_running_loop().create_future()
        interruptions = self._interruptions
        self._tick_written = 0
        self._ticket = pacer.call_at(self._next_due(), partial(self._write_from_tick, done))
        try:
            await done
        finally:
            self._drop_ticket()
        if interruptions != self._interruptions:
            return True  # cut off: nothing more of this audio plays
        if not self._tick_written:
            return False
        if self._pause_pending():  # a pause came during the batch (mypy: not narrowed)
            await self._hold_while_paused()
        return True

    def _pause_pending(self) -> bool:
        return self._paused is not None

    def _drop_ticket(self) -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            ticket.cancel()

    def _write_from_tick(self, done: asyncio.Future[None]) -> None:
        """The ticket of :meth:`_play_from_tick`: write the chunk due, then take it again
        for the next."""
        ticket = self._ticket
        if ticket is None or done.done():
            return
        size = 2 * self._chunk_samples
        if len(self._pending) < size:
            done.set_result(None)
            return
        due = self._on_schedule(self.pacer.now_ns(), self._next_due())
        chunk = self._take_chunk()
        self._tick_written += 1
        try:
            self.write_chunk_now(chunk, due)
        except Exception as exc:
            done.set_exception(exc)
            return
        if self._paused is not None or len(self._pending) < size:
            done.set_result(None)
        elif self._ticket is ticket:  # (not reset by the write)
            self.pacer.call_again(ticket, self._audio_end_ns)  # when the next chunk is due

    async def _finish_playback(self, *, release: bool, confirm: bool = True) -> None:
        """Play what is buffered, wait until it has played, then pass on the held text.

        Without ``release`` the held text is passed on only if some of its audio played.
        With ``confirm`` (no next piece is waiting to play) :meth:`until_heard` comes first.
        """
        self._flush_resampler()
        while self._pending:
            await self._play_chunk()
        if self._scheduled:
            await self.pacer.sleep_until(self._audio_end_ns)
        if confirm and self._held is not None and self._piece_samples > 0:
            await self.until_heard()
        held = self._held
        if held is not None and (release or self._piece_samples > 0):
            self._held = None
            self._piece_samples = 0
            await self.push(held, DOWN)

    async def _wait_arrival(self, deadline_ns: int | None) -> bool:
        """Wait until a frame is queued or ``deadline_ns`` passes; True if one is queued."""
        queue = self._queue
        if queue:
            return True
        if deadline_ns is None or deadline_ns <= self.pacer.now_ns():
            return False
        self._arrival = anyio.Event()
        try:
            await self.pacer.wait(self._arrival, deadline_ns)
        finally:
            self._arrival = None
        return bool(queue)

    async def _idle_tail(self) -> None:
        """After a frame: if the queue runs dry, finish playing and, later, announce the stop."""
        if not (self._speaking or self._pending or self._resampler_dirty):
            return
        if await self._wait_arrival(self._next_due() if self._scheduled else None):
            return
        await self._finish_playback(release=False)
        self._scheduled = False
        if not self._speaking:
            return
        if await self._wait_arrival(self._audio_end_ns + int(self.params.stop_delay_ms * 1e6)):
            return
        await self._stop_speaking(interrupted=False)

    async def _stop_speaking(self, *, interrupted: bool, unplayed_s: float = 0.0) -> None:
        """Announce the end of a stretch; ``played_s`` leaves out ``unplayed_s`` cut off."""
        if not self._speaking:
            return
        self._speaking = False
        played_s = max(0.0, self._stretch_samples / self._rate - unplayed_s)
        self._stretch_samples = 0
        end_ns = self._audio_end_ns
        self.report_event("bot_audio_stopped", end_ns, interrupted=interrupted, played_s=played_s)
        for direction in (DOWN, UP):
            frame = BotStoppedSpeakingFrame(
                interrupted=interrupted,
                played_s=played_s,
                mid_reply=self._in_reply and not interrupted,
            )
            await self.push(frame, direction)
        if not self._markers_seen:
            self._reply_pending = True
        await self.on_speaking_changed(False, end_ns)
