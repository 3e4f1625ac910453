"""The benchmark's sessions, no model in any: an echo, no pipeline at all, and a bot cut off.

Echo: whatever the peer says comes straight back as the bot's audio, so what a
session costs is the transport's own work: Opus decoding and encoding,
resampling both ways, the paced output and the events. Idle: the floor under
that. Cut: a tone interrupted on a fixed cycle, to time how soon the peer stops
hearing it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from aiortc.mediastreams import MediaStreamError

from framework import (
    Direction,
    Pipeline,
    PipelineRunner,
    PipelineTask,
    Processor,
    TaskParams,
    handles,
)
from framework.audio import sine_wave
from framework.frames import InputAudioFrame, OutputAudioFrame

__all__ = [
    "CUT_TIMES",
    "RUN_SESSIONS",
    "CutBot",
    "EchoBot",
    "run_cut_session",
    "run_echo_session",
    "run_idle_session",
]

CUT_TIMES: dict[str, list[tuple[int, int]]] = {}
"""Per transport name, each :class:`CutBot` cycle of this process: when its tone was
pushed and when it interrupted itself (``time.monotonic_ns()``)."""


class EchoBot(Processor):
    """Passes input audio on and sends the same audio back out as bot audio."""

    @handles(InputAudioFrame)
    async def _heard(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        echo = OutputAudioFrame(
            audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
        )
        await self.push(echo, Direction.DOWNSTREAM)


async def run_echo_session(transport: Any) -> None:
    """A ``run_session`` for the live server: the echo pipeline around ``transport``."""
    pipeline = Pipeline([transport.input(), EchoBot(name="echo"), transport.output()])
    task = PipelineTask(pipeline, TaskParams(name="echo"))
    await PipelineRunner(handle_signals=False).run(task)


async def run_idle_session(transport: Any) -> None:
    """A ``run_session`` with no pipeline: the floor under the echo's cost.

    The peer's audio is still decoded as it arrives (the receive track does that)
    and read, then dropped; the outgoing track, never written, sends its cached
    packet of silence every 20 ms without encoding. What is left is aiortc's
    work (ICE, SRTP, RTP and RTCP both ways), Opus decoding and the tracks.
    """
    track = await transport.peer.remote_audio()
    with contextlib.suppress(MediaStreamError):  # the peer has gone
        while True:
            await track.recv()
            transport.peer.frames_received += 1


class CutBot(Processor):
    """Talks and is cut off, again and again, on the clock of the peer's audio.

    Every ``cycle`` input chunks it starts a ``tone_s`` tone (one frame, played by
    the paced output) and ``cut_after`` chunks later interrupts the pipeline, as a
    barge-in does. Both moments go to ``CUT_TIMES[key]``. What the peer hears after
    the cut is what the transport had queued or in flight.
    """

    def __init__(
        self, key: str, *, cycle: int = 100, cut_after: int = 40, tone_s: float = 1.5
    ) -> None:
        """Cycle ``cycle`` chunks, cut ``cut_after`` chunks into a ``tone_s`` tone."""
        super().__init__(name="cut")
        self.cycle, self.cut_after, self.tone_s = cycle, cut_after, tone_s
        self._chunks = 0
        self._tone_ns = 0
        self._times = CUT_TIMES.setdefault(key, [])

    @handles(InputAudioFrame)
    async def _heard(self, frame: InputAudioFrame, direction: Direction) -> None:
        await self.push(frame, direction)
        step = self._chunks % self.cycle
        self._chunks += 1
        if step == 0:
            tone = sine_wave(440, frame.sample_rate, self.tone_s, amplitude=0.3)
            self._tone_ns = time.monotonic_ns()
            await self.push(OutputAudioFrame(audio=tone, sample_rate=frame.sample_rate))
        elif step == self.cut_after:
            self._times.append((self._tone_ns, time.monotonic_ns()))
            await self.broadcast_interruption()


async def run_cut_session(transport: Any) -> None:
    """A ``run_session``: input, :class:`CutBot`, output."""
    pipeline = Pipeline([transport.input(), CutBot(transport.name), transport.output()])
    task = PipelineTask(pipeline, TaskParams(name="cut"))
    await PipelineRunner(handle_signals=False).run(task)


RUN_SESSIONS = {"echo": run_echo_session, "idle": run_idle_session, "cut": run_cut_session}
"""The sessions the benchmark can run, by name (``--session``)."""
