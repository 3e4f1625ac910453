"""The scenario transport: plays a corpus conversation into a pipeline, turn by turn.

:class:`ScenarioTransport` offers ``input()`` and ``output()`` processors like a file
transport, so :func:`pipelines.factory.build_session` builds any pipeline file
around it. The input side feeds 20 ms chunks at real-time pace on an absolute
schedule (sample ``i`` is heard at ``origin_ns + i / rate``; a chunk is pushed
once its last sample is due and stamped with its first), silence between items,
and places each item of the conversation *relative to the bot*:

* ``after_reply`` items (normal and noise turns, silence stretches) start
  ``gap_s`` after the bot's reply to the previous item has stopped (the bot
  silent for that long), or ``reply_timeout_s`` after the previous speech ended
  if the bot never started; a reply going on for ``max_reply_s`` is talked over;
* ``during_reply`` items (barge-in turns, noise over the bot) start ``delay_s``
  after the bot's reply to the previous item started.

Items are placed to the sample, so the true speech start and end of every turn
are known exactly on the task's clock. Each placement is reported to the event
log as a ``scenario_item`` record (its ``t_ns`` is the item's first sample), which
makes the measurement a pure function of the event records.

The output side is an :class:`~processors.transports.output.OutputTransport` that
plays nothing: it tells the input side when bot audio starts and stops (play
times of the first and last samples) and reports ``bot_first_audible``, the play
time of the first sample of each reply louder than ``audible_dbfs`` (what a
listener hears first, after any leading silence in the synthesised audio).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from framework.frames import EndFrame, StartFrame
from processors.transports.base import (
    InputTransport,
    InputTransportParams,
    OutputTransportParams,
    sleep_until_ns,
)
from processors.transports.output import OutputTransport

if TYPE_CHECKING:
    from benchmarks.latency.corpus import CorpusConversation, CorpusItem

__all__ = ["ScenarioInput", "ScenarioOutput", "ScenarioParams", "ScenarioTransport"]

log = logging.getLogger("parley.bench")
_NS = 1_000_000_000


class ScenarioParams(BaseModel):
    """How a conversation is played against the bot."""

    model_config = ConfigDict(extra="forbid")

    chunk_ms: float = Field(default=20.0, gt=0, le=200, description="Input chunk duration.")
    lead_in_s: float = Field(default=1.0, ge=0, description="Silence before the first item.")
    gap_s: float = Field(
        default=0.8, ge=0, description="Default silence after the bot's reply before a turn."
    )
    delay_s: float = Field(
        default=1.0, ge=0, description="Default delay of a barge-in after the bot started."
    )
    reply_timeout_s: float = Field(
        default=8.0, gt=0, description="Go on when no reply started this long after a turn."
    )
    max_reply_s: float = Field(
        default=30.0, gt=0, description="Talk over a reply that lasts longer than this."
    )
    tail_s: float = Field(
        default=1.0, ge=0, description="Silence after the last reply before the End frame."
    )
    max_duration_s: float = Field(
        default=600.0, gt=0, description="Safety cap on one conversation."
    )
    audible_dbfs: float = Field(
        default=-50.0, le=0, description="Level of the first bot sample a listener hears."
    )
    record: bool = Field(default=False, description="Keep the audio for a stereo recording.")


@dataclass
class _Shared:
    """What the two sides know of each other."""

    origin_ns: int | None = None
    in_rate: int = 0
    out_rate: int = 0
    # [start_ns, end_ns or -1, audible 0/1]: audio that is all silence is no reply
    stretches: list[list[int]] = field(default_factory=list)
    user_chunks: list[tuple[int, bytes]] = field(default_factory=list)
    bot_chunks: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def bot_speaking(self) -> bool:
        return bool(self.stretches) and self.stretches[-1][1] < 0

    def first_start_after(self, t_ns: int) -> int | None:
        """Start of the first audible stretch that began at or after ``t_ns``."""
        for start, _end, audible in self.stretches:
            if start >= t_ns and audible:
                return start
        return None

    def last_stop(self) -> int | None:
        for _start, end, _audible in reversed(self.stretches):
            if end >= 0:
                return end
        return None


@dataclass
class _Placed:
    index: int
    item: CorpusItem
    start: int  # first sample, in input samples from the origin
    pcm: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.pcm) // 2


class ScenarioTransport:
    """Plays ``conversation`` at real-time pace and watches the bot; see the module doc."""

    Params: ClassVar[type[ScenarioParams]] = ScenarioParams

    def __init__(
        self,
        conversation: CorpusConversation,
        params: ScenarioParams | None = None,
        *,
        name: str | None = None,
        on_item: Any = None,
    ) -> None:
        """``on_item(index, item)`` is called as each item starts (progress reporting)."""
        self.conversation = conversation
        self.params = params or ScenarioParams()
        self.name = name or "scenario"
        self.on_item = on_item
        self._shared = _Shared()
        self._input: ScenarioInput | None = None
        self._output: ScenarioOutput | None = None

    @property
    def origin_ns(self) -> int | None:
        """When sample 0 of the input was heard (None before the input started)."""
        return self._shared.origin_ns

    def input(self) -> ScenarioInput:
        """The input processor (the same one on every call)."""
        if self._input is None:
            self._input = ScenarioInput(self, name=f"{self.name}.input")
        return self._input

    def output(self) -> ScenarioOutput:
        """The output processor (the same one on every call)."""
        if self._output is None:
            params = OutputTransportParams(chunk_ms=self.params.chunk_ms)
            self._output = ScenarioOutput(self, params, name=f"{self.name}.output")
        return self._output

    def stereo_recording(self) -> tuple[bytes, int]:
        """User left, bot right, at the output rate, on the input's timeline (``record``)."""
        from framework.audio import interleave, resample

        shared = self._shared
        rate, origin = shared.out_rate or 24000, shared.origin_ns or 0
        tracks = []
        for chunks, chunk_rate in ((shared.user_chunks, shared.in_rate), (shared.bot_chunks, rate)):
            placed = []
            for t_ns, pcm in chunks:
                audio = resample(pcm, chunk_rate, rate) if chunk_rate != rate else pcm
                placed.append((max(0, round((t_ns - origin) * rate / _NS)), audio))
            tracks.append(placed)
        end = max((pos + len(pcm) // 2 for track in tracks for pos, pcm in track), default=0)
        buffers = [bytearray(2 * end), bytearray(2 * end)]
        for buffer, track in zip(buffers, tracks, strict=True):
            for pos, pcm in track:
                buffer[2 * pos : 2 * pos + len(pcm)] = pcm
        return interleave(bytes(buffers[0]), bytes(buffers[1])), rate


class ScenarioInput(InputTransport):
    """Feeds the conversation's items and the silence between them; see :mod:`.scenario`."""

    def __init__(self, transport: ScenarioTransport, *, name: str | None = None) -> None:
        """Created by :meth:`ScenarioTransport.input`."""
        super().__init__(InputTransportParams(chunk_ms=transport.params.chunk_ms), name=name)
        self.transport = transport
        self._audio: list[bytes] = []

    async def on_start(self, frame: StartFrame) -> None:
        """Convert every item's audio to the task's input rate (in a worker thread)."""
        await super().on_start(frame)
        self.transport._shared.in_rate = self.sample_rate
        items = self.transport.conversation.items
        self._audio = await self.run_blocking(_convert_all, items, self.sample_rate)

    async def produce(self) -> None:
        """Play the items, each when its trigger fires, then push an End frame."""
        p, shared = self.transport.params, self.transport._shared
        items = self.transport.conversation.items
        rate, n = self.sample_rate, self.chunk_samples
        origin = shared.origin_ns = time.monotonic_ns()
        self.report_event(
            "scenario_start",
            origin,
            conversation=self.transport.conversation.name,
            sample_rate=rate,
            items=len(items),
        )
        cap_ns = origin + int(p.max_duration_s * _NS)
        placed: list[_Placed] = []
        k = 0
        reason = "done"
        while True:
            now = time.monotonic_ns()
            if now >= cap_ns:
                reason = "max_duration"
                log.warning("%s: max_duration_s reached, ending the conversation", self.name)
                break
            current = placed[-1] if placed else None
            if current is None or current.end <= k:
                index = len(placed)
                at = self._trigger(index, placed, now)
                if at is not None:
                    when_ns, why, ref_ns = at
                    start = max(k, math.ceil((when_ns - origin) * rate / _NS))
                    if start < k + n:
                        if index >= len(items):
                            self._report_end(origin, start, rate, reason)
                            break
                        placed.append(self._place(index, start, origin, why, ref_ns, when_ns))
            chunk = _mix(placed[-1] if placed else None, k, n)
            await sleep_until_ns(origin + (k + n) * _NS // rate)
            t_ns = origin + k * _NS // rate
            if p.record:
                shared.user_chunks.append((t_ns, chunk))
            await self.push_audio(chunk, t_ns)
            k += n
        if reason != "done":
            self._report_end(origin, k, rate, reason)
        await self.push(EndFrame(reason=f"scenario {reason}"))

    def _report_end(self, origin: int, at: int, rate: int, reason: str) -> None:
        self.report_event("scenario_end", origin + at * _NS // rate, reason=reason)

    def _trigger(
        self, index: int, placed: list[_Placed], now: int
    ) -> tuple[int, str, int | None] | None:
        """When item ``index`` (or the end, past the last) should start; None: not yet."""
        p, shared = self.transport.params, self.transport._shared
        items = self.transport.conversation.items
        origin = shared.origin_ns or 0
        rate = self.sample_rate
        if index == 0:
            return origin + int(p.lead_in_s * _NS), "lead_in", None
        prev = placed[-1]
        prev_start = origin + prev.start * _NS // rate
        prev_end = origin + prev.end * _NS // rate
        if prev.item.speech_end_s is not None:  # a reply starts after the user finished
            speech_end = prev_start + round(prev.item.speech_end_s * _NS)
            reply = shared.first_start_after(speech_end)
        else:
            speech_end = prev_end
            reply = shared.first_start_after(prev_start)
        timed_out = now >= speech_end + int(p.reply_timeout_s * _NS)
        item = items[index] if index < len(items) else None
        if item is not None and item.trigger == "during_reply":
            delay = item.delay_s if item.delay_s is not None else p.delay_s
            if reply is not None:
                return reply + int(delay * _NS), "during_reply", reply
            return (now, "timeout", None) if timed_out else None
        if prev.item.reply_expected and reply is None and not timed_out:
            return None
        if shared.bot_speaking:
            if reply is not None and now - reply >= int(p.max_reply_s * _NS):
                return now, "talked_over", reply
            return None
        gap = p.tail_s
        if item is not None:
            gap = item.gap_s if item.gap_s is not None else p.gap_s
        stop = shared.last_stop()
        quiet_from = max(prev_end, stop or 0)
        why = "after_reply" if reply is not None else ("timeout" if timed_out else "after_item")
        return quiet_from + int(gap * _NS), why, stop

    def _place(
        self, index: int, start: int, origin: int, why: str, ref_ns: int | None, when_ns: int
    ) -> _Placed:
        item = self.transport.conversation.items[index]
        pcm = self._audio[index]
        rate = self.sample_rate
        start_ns = origin + start * _NS // rate
        fields: dict[str, Any] = {
            "index": index,
            "conversation": item.conversation,
            "turn": item.turn,
            "kind": item.kind,
            "trigger": why,
            "ref_ns": ref_ns,
            "late_ns": start_ns - when_ns,
            "end_ns": start_ns + (len(pcm) // 2) * _NS // rate,
            "speech_start_ns": None,
            "speech_end_ns": None,
            "transcript": item.transcript,
            "snr_db": item.snr_db,
            "reply_expected": item.reply_expected,
        }
        if item.speech_start_s is not None and item.speech_end_s is not None:
            fields["speech_start_ns"] = start_ns + round(item.speech_start_s * _NS)
            fields["speech_end_ns"] = start_ns + round(item.speech_end_s * _NS)
        self.report_event("scenario_item", start_ns, **fields)
        if self.transport.on_item is not None:
            self.transport.on_item(index, item)
        return _Placed(index, item, start, pcm)


def audible_threshold(dbfs: float) -> int:
    """The sample value of a level in dBFS (at least 1)."""
    return max(1, round(32768 * 10 ** (dbfs / 20)))


def _mix(current: _Placed | None, k: int, n: int) -> bytes:
    """Chunk ``[k, k + n)`` of the input stream: the current item's audio, else silence."""
    if current is None or current.end <= k or current.start >= k + n:
        return bytes(2 * n)
    lead = max(0, current.start - k)
    offset = max(0, k - current.start)
    body = current.pcm[2 * offset : 2 * (offset + n - lead)]
    chunk = bytes(2 * lead) + body
    return chunk + bytes(2 * n - len(chunk))


def _convert_all(items: tuple[CorpusItem, ...], rate: int) -> list[bytes]:
    from framework.audio import resample

    return [
        item.pcm if item.sample_rate == rate else resample(item.pcm, item.sample_rate, rate)
        for item in items
    ]


class ScenarioOutput(OutputTransport):
    """Plays nothing; tells the input side when the bot speaks, and reports audibility."""

    def __init__(
        self,
        transport: ScenarioTransport,
        params: OutputTransportParams | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Created by :meth:`ScenarioTransport.output`."""
        super().__init__(params, name=name)
        self.transport = transport
        self._audible_replies = 0
        self._threshold = 1
        self._loud_first_chunk = False

    async def on_start(self, frame: StartFrame) -> None:
        """Take the output rate."""
        await super().on_start(frame)
        self.transport._shared.out_rate = self.sample_rate
        self._threshold = audible_threshold(self.transport.params.audible_dbfs)

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        """Report the first audible sample of each reply; keep the audio if recording."""
        import numpy as np

        shared = self.transport._shared
        if self.transport.params.record:
            shared.bot_chunks.append((play_ns, pcm))
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.int32)
        loud = np.flatnonzero(np.abs(samples) >= self._threshold)
        if loud.size:
            if shared.bot_speaking:
                shared.stretches[-1][2] = 1
            else:  # the first chunk of a stretch: announced just after this call
                self._loud_first_chunk = True
        replies = len(self.reply_first_audio_ns)
        if replies > self._audible_replies and loud.size:
            self._audible_replies = replies
            at = play_ns + int(loud[0]) * _NS // self.sample_rate
            self.report_event("bot_first_audible", at, reply=replies)

    async def on_speaking_changed(self, speaking: bool, t_ns: int) -> None:
        """Start or close a stretch of bot audio on the shared timeline."""
        stretches = self.transport._shared.stretches
        if speaking:
            stretches.append([t_ns, -1, int(self._loud_first_chunk)])
            self._loud_first_chunk = False
        elif stretches and stretches[-1][1] < 0:
            stretches[-1][1] = t_ns
