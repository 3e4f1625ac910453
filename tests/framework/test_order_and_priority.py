"""Promises 1 and 2: order per direction, and system frames never wait behind data."""

from __future__ import annotations

import anyio
import pytest

from framework import Direction, Pipeline, PipelineTask, Processor, handles
from framework.frames import TextFrame

from .helpers import Control, Data, Injector, Ping, Recorder, Slow, wait_until

pytestmark = pytest.mark.anyio

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM


async def test_data_and_control_keep_their_order_downstream_through_queued_stages() -> None:
    sink = Recorder("sink")
    pipeline = Pipeline([Processor(), Slow(0.001), Processor(queued=True), Slow(0), sink])
    task = PipelineTask(pipeline)
    frames = [Data(seq=i) if i % 3 else Control(seq=i) for i in range(60)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames(frames)
        await task.stop_when_done()
    assert sink.seqs(DOWN) == list(range(60))


async def test_order_holds_upstream_too() -> None:
    head = Recorder("head")
    tail = Injector(name="tail")
    task = PipelineTask(Pipeline([head, Slow(0.001), Processor(queued=True), tail]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: task.running)
        for i in range(40):
            await tail.inject(Data(seq=i) if i % 2 else Control(seq=i), UP)
        await wait_until(lambda: len(head.seqs(UP)) == 40)
        await task.cancel()
    assert head.seqs(UP) == list(range(40))


async def test_system_frame_passes_a_slow_stage_with_a_backlog() -> None:
    slow = Slow(0.05)
    sink = Recorder("sink")
    task = PipelineTask(Pipeline([Processor(), slow, Processor(), sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([Data(seq=i) for i in range(10)])
        await wait_until(lambda: slow.started)
        await task.queue_frame(Ping(seq=99))
        # The ping arrives while the slow stage has finished at most one data frame.
        assert [f.seq for f in sink.frames(kind=Ping)] == [99]
        assert len(sink.frames(kind=Data)) <= 1
        await task.cancel()


async def test_system_frame_passes_queued_stages_upstream() -> None:
    head = Recorder("head")
    slow = Slow(0.05)
    tail = Injector(name="tail")
    task = PipelineTask(Pipeline([head, slow, tail]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: task.running)
        for i in range(5):
            await tail.inject(Data(seq=i), UP)
        await tail.inject(Ping(seq=7), UP)
        assert head.seqs(UP) == [7]
        await task.cancel()


async def test_handlers_are_found_by_frame_type_and_unhandled_frames_pass() -> None:
    class Upper(Processor):
        @handles(TextFrame)
        async def _text(self, frame: TextFrame, direction: Direction) -> None:
            await self.push(TextFrame(text=frame.text.upper()), direction)

    sink = Recorder()
    task = PipelineTask(Pipeline([Upper(), sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([TextFrame(text="hi"), Data(seq=1)])
        await task.stop_when_done()
    assert [f.text for f in sink.frames(kind=TextFrame)] == ["HI"]
    assert sink.seqs() == [1]


def test_handles_refuses_non_frame_types() -> None:
    with pytest.raises(TypeError, match="Frame subclasses"):
        handles(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one"):
        handles()
