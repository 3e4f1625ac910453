"""Promise 3: an interruption drops queued interruptible frames and cancels in-flight work."""

from __future__ import annotations

import anyio
import pytest

from framework import Direction, Pipeline, PipelineTask, Processor
from framework.frames import InterruptionFrame

from .helpers import Data, Injector, Recorder, Slow, Sticky, wait_until

pytestmark = pytest.mark.anyio

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


async def test_interruption_drops_exactly_the_queued_interruptible_frames() -> None:
    slow = Slow(0.05)
    sink = Recorder("sink")
    task = PipelineTask(Pipeline([Processor(), slow, sink]))
    frames = [Sticky(seq=i) if i in (3, 6) else Data(seq=i) for i in range(10)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames(frames)
        await wait_until(lambda: slow.started == [0])
        await task.queue_frame(InterruptionFrame())
        # Frame 0 was in flight: cancelled at its next checkpoint, never delivered.
        await wait_until(lambda: slow.cancelled == [0])
        # After the interruption, new frames flow normally.
        await task.queue_frames([Data(seq=100), Data(seq=101)])
        await task.stop_when_done()
    assert sink.seqs() == [3, 6, 100, 101]
    assert slow.finished == [3, 6, 100, 101]
    interruptions = sink.frames(kind=InterruptionFrame)
    assert len(interruptions) == 1


async def test_uninterruptible_frame_in_flight_is_not_cancelled() -> None:
    slow = Slow(0.05)
    sink = Recorder()
    task = PipelineTask(Pipeline([slow, sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([Sticky(seq=1), Data(seq=2)])
        await wait_until(lambda: slow.started == [1])
        await task.queue_frame(InterruptionFrame())
        await task.stop_when_done()
    assert slow.cancelled == []
    assert sink.seqs() == [1]


async def test_broadcast_interruption_reaches_both_ends_once_and_clears_both_sides() -> None:
    head = Recorder("head")
    upstream_slow = Slow(0.05, name="up-slow")
    middle = Injector(name="middle")
    downstream_slow = Slow(0.05, name="down-slow")
    tail = Recorder("tail")
    task = PipelineTask(Pipeline([head, upstream_slow, middle, downstream_slow, tail]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: task.running)
        for i in range(5):
            await middle.inject(Data(seq=i), DOWN)
            await middle.inject(Data(seq=10 + i), UP)
        await wait_until(lambda: downstream_slow.started and upstream_slow.started)
        await middle.broadcast_interruption()
        assert len(head.frames(UP, InterruptionFrame)) == 1
        assert len(tail.frames(DOWN, InterruptionFrame)) == 1
        await task.stop_when_done()
    assert tail.seqs(DOWN) == []
    assert head.seqs(UP) == []
    assert downstream_slow.cancelled == [0]
    assert upstream_slow.cancelled == [10]


async def test_on_interruption_hook_runs_in_every_processor() -> None:
    calls: list[str] = []
    dropped_seqs: list[int] = []

    class Hooked(Processor):
        async def on_interruption(self, frame: InterruptionFrame, dropped) -> None:
            calls.append(self.name)
            if self.queued:
                dropped_seqs.extend(f.seq for f, _ in dropped)

    class SlowHooked(Slow):
        async def on_interruption(self, frame: InterruptionFrame, dropped) -> None:
            dropped_seqs.extend(f.seq for f, _ in dropped)

    stages = [Hooked(name=f"s{i}", queued=i % 2 == 0) for i in range(4)]
    slow = SlowHooked(0.05)
    task = PipelineTask(Pipeline([*stages, slow, Hooked(name="s4", queued=True)]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([Data(seq=i) for i in range(4)])
        await wait_until(lambda: slow.started == [0])
        await task.queue_frame(InterruptionFrame())
        await task.stop_when_done()
    assert calls == ["s0", "s1", "s2", "s3", "s4"]
    # The slow stage held 1, 2 and 3 in its queue (0 was in flight); the others held nothing.
    assert dropped_seqs == [1, 2, 3]
    assert slow.cancelled == [0]


async def test_a_task_started_by_interrupted_work_still_pushes() -> None:
    """Work that starts a background task and is then interrupted: the task lives on,
    and what it pushes later is not mistaken for the cancelled work's output."""
    sink = Recorder()
    go_on = anyio.Event()

    class Spawner(Processor):
        async def process_frame(self, frame, direction) -> None:
            if isinstance(frame, Data) and frame.seq == 1:
                self.context.task_group.start_soon(self._later)
                await anyio.sleep(10)  # in flight until the interruption cancels it
            await self.push(frame, direction)

        async def _later(self) -> None:
            await go_on.wait()
            await self.push(Data(seq=99))

    spawner = Spawner(queued=True)
    task = PipelineTask(Pipeline([spawner, sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frame(Data(seq=1))
        await anyio.sleep(0.05)
        await task.queue_frame(InterruptionFrame())
        await anyio.sleep(0.05)
        go_on.set()
        await wait_until(lambda: 99 in sink.seqs())
        await task.stop_when_done()
    assert sink.seqs() == [99]
