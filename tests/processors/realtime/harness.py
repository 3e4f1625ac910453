"""Run a realtime processor in a real pipeline: taps, the real output transport, the context."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from framework import Direction, Frame, Pipeline, PipelineTask, Processor, TaskParams
from framework.audio import sine_wave
from framework.frames import InputAudioFrame
from processors.llm.context import AssistantContextAggregator, LLMContext
from processors.transports.output import OutputTransport

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM
KEY_ENV = "PARLEY_TEST_REALTIME_KEY"


class Tap(Processor):
    """Records every frame but input audio, with its direction and arrival time."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.seen: list[tuple[Frame, Direction, int]] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if not isinstance(frame, InputAudioFrame):
            self.seen.append((frame, direction, time.monotonic_ns()))
        await self.push(frame, direction)

    def frames(self, kind: type | tuple[type, ...] = Frame, direction: Direction = DOWN) -> list:
        return [f for f, d, _ in self.seen if d is direction and isinstance(f, kind)]


@dataclass
class Harness:
    """A running pipeline: tap_in, processor, tap_mid, output transport, context, tap_out."""

    task: PipelineTask
    processor: Any
    tap_in: Tap
    tap_mid: Tap
    tap_out: Tap
    context: LLMContext
    clock_ns: int = field(default_factory=time.monotonic_ns)

    async def wait(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Poll ``predicate`` until it returns something truthy."""
        with anyio.fail_after(within):
            while not (found := predicate()):
                await anyio.sleep(0.005)
        return found

    async def wait_frame(self, kind: type, count: int = 1, within: float = 10.0) -> Any:
        """The ``count``-th ``kind`` frame that reached the end of the pipeline."""
        found = await self.wait(lambda: len(self.tap_out.frames(kind)) >= count, within)
        assert found
        return self.tap_out.frames(kind)[count - 1]

    async def audio(self, ms: int, *, rate: int = 16000, paced: bool = False) -> None:
        """Queue ``ms`` of a tone as 20 ms input frames stamped on a running clock."""
        pcm = sine_wave(300, rate, ms / 1000, 0.3)
        step = rate * 2 * 20 // 1000
        for start in range(0, len(pcm), step):
            await self.task.queue_frame(
                InputAudioFrame(
                    audio=pcm[start : start + step], sample_rate=rate, timestamp_ns=self.clock_ns
                )
            )
            self.clock_ns += 20_000_000
            if paced:
                await anyio.sleep(0.02)


@asynccontextmanager
async def running(processor: Any, context: LLMContext | None = None) -> AsyncIterator[Harness]:
    """Run ``processor`` in a pipeline until the block ends (then cancel the task)."""
    ctx = context if context is not None else LLMContext()
    tap_in, tap_mid, tap_out = Tap("tap_in"), Tap("tap_mid"), Tap("tap_out")
    out = OutputTransport(name="out")
    pipeline = Pipeline([tap_in, processor, tap_mid, out, AssistantContextAggregator(ctx), tap_out])
    task = PipelineTask(pipeline, TaskParams(name="realtime-test", cleanup_timeout_s=3.0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        harness = Harness(task, processor, tap_in, tap_mid, tap_out, ctx)
        try:
            yield harness
        finally:
            await task.cancel()
