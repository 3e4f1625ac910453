"""Small processors and helpers for driving transports in tests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import numpy as np

from framework import Direction, EndReason, Frame, Pipeline, PipelineTask, Processor, TaskParams
from framework.audio import read_wav, sine_wave
from framework.frames import InputAudioFrame, OutputAudioFrame
from framework.observer import Observer

Action = Callable[["Cue"], Awaitable[None]]


class Cue(Processor):
    """Runs actions when the input timeline reaches given times (seconds from the origin).

    Sits after the input transport; an action fires on the first input chunk
    stamped at or after its time, from the input's producer task. Also records
    every frame other than input audio that passes, with its arrival time.
    """

    def __init__(self, origin: Callable[[], int | None], cues: Sequence[tuple[float, Action]]):
        super().__init__(name="cue")
        self._origin = origin
        self._cues = sorted(cues, key=lambda c: c[0])
        self.fired_ns: list[int] = []
        self.seen: list[tuple[int, Frame, Direction]] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if not isinstance(frame, InputAudioFrame):
            self.seen.append((time.monotonic_ns(), frame, direction))
        await self.push(frame, direction)
        origin = self._origin()
        if isinstance(frame, InputAudioFrame) and origin is not None:
            while self._cues and frame.timestamp_ns - origin >= self._cues[0][0] * 1e9:
                _, action = self._cues.pop(0)
                self.fired_ns.append(time.monotonic_ns())
                await action(self)

    def frames(self, kind: type, direction: Direction = Direction.UPSTREAM) -> list:
        return [f for _, f, d in self.seen if d is direction and isinstance(f, kind)]


class Tap(Processor):
    """Records every frame that passes with its arrival time (input audio optionally)."""

    def __init__(self, name: str = "tap", *, audio: bool = False) -> None:
        super().__init__(name=name)
        self.audio = audio
        self.seen: list[tuple[int, Frame, Direction]] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if self.audio or not isinstance(frame, InputAudioFrame):
            self.seen.append((time.monotonic_ns(), frame, direction))
        await self.push(frame, direction)

    def frames(self, kind: type, direction: Direction = Direction.DOWNSTREAM) -> list:
        return [f for _, f, d in self.seen if d is direction and isinstance(f, kind)]

    def times(self, kind: type, direction: Direction = Direction.DOWNSTREAM) -> list[int]:
        return [t for t, f, d in self.seen if d is direction and isinstance(f, kind)]


def push_all(frames: Sequence[Frame]) -> Action:
    """An action pushing ``frames`` downstream in order."""

    async def action(cue: Cue) -> None:
        for frame in frames:
            await cue.push(frame)

    return action


def tone_frames(
    duration_s: float, rate: int = 24000, frame_ms: float = 20, freq: float = 440
) -> list[OutputAudioFrame]:
    """A continuous tone cut into OutputAudioFrames of ``frame_ms``."""
    pcm = sine_wave(freq, rate, duration_s, amplitude=0.5)
    size = 2 * round(rate * frame_ms / 1000)
    return [
        OutputAudioFrame(audio=pcm[i : i + size], sample_rate=rate)
        for i in range(0, len(pcm), size)
    ]


async def run_task(
    processors: Sequence[Processor],
    *,
    observers: Sequence[Observer] = (),
    limit_s: float = 15.0,
    during: Callable[[PipelineTask], Awaitable[None]] | None = None,
) -> PipelineTask:
    """Run a pipeline of ``processors`` to its end (failing after ``limit_s``)."""
    task = PipelineTask(Pipeline(list(processors)), TaskParams(), observers=observers)
    with anyio.fail_after(limit_s):
        async with anyio.create_task_group() as tg:
            tg.start_soon(task.run)
            if during is not None:
                await during(task)
    assert task.end_reason in (EndReason.ENDED, EndReason.CANCELLED)
    return task


def channels(path: Path) -> tuple[int, np.ndarray]:
    """Read a WAV as (rate, int16 array of shape (samples, channels))."""
    audio = read_wav(path)
    data = np.frombuffer(audio.pcm, dtype="<i2").reshape(-1, audio.num_channels)
    return audio.sample_rate, data


def nonzero_span(samples: np.ndarray, threshold: int = 200) -> tuple[int, int]:
    """First and last index where |sample| exceeds ``threshold``."""
    idx = np.nonzero(np.abs(samples.astype(np.int32)) > threshold)[0]
    assert idx.size, "no audio above the threshold"
    return int(idx[0]), int(idx[-1])
