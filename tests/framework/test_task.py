"""Task lifecycle (promise 5), error reporting (promise 6) and bad input."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from framework import (
    EndReason,
    Pipeline,
    PipelineRunner,
    PipelineTask,
    Processor,
    TaskFinishedError,
    TaskParams,
)
from framework.frames import CancelFrame, EndFrame, Frame, InterruptionFrame, StartFrame

from .helpers import Data, Recorder, Slow, wait_until

pytestmark = pytest.mark.anyio


class Boom(Processor):
    """Fails on data frames whose seq is in ``bad``."""

    def __init__(self, bad: set[int]) -> None:
        super().__init__(name="boom")
        self.bad = bad

    async def process_frame(self, frame: Frame, direction) -> None:
        if isinstance(frame, Data) and frame.seq in self.bad:
            raise ValueError(f"cannot take {frame.seq}")
        await self.push(frame, direction)


async def test_end_drains_every_queued_frame_before_stopping() -> None:
    slow = Slow(0.005)
    sink = Recorder()
    task = PipelineTask(Pipeline([slow, Processor(queued=True), sink]))
    await task.queue_frames([Data(seq=i) for i in range(20)])  # queued before run: waits
    await task.stop_when_done()
    reason = await task.run()
    assert reason is EndReason.ENDED
    assert sink.seqs() == list(range(20))
    assert isinstance(sink.frames(kind=StartFrame)[0], StartFrame)
    assert isinstance(sink.seen[-1][0], EndFrame)


async def test_cancel_stops_at_once_without_draining() -> None:
    slow = Slow(0.5)
    sink = Recorder()
    task = PipelineTask(Pipeline([slow, sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([Data(seq=i) for i in range(20)])
        await wait_until(lambda: slow.started)
        await task.cancel("test")
        await wait_until(lambda: task.finished)
    assert task.end_reason is EndReason.CANCELLED
    assert sink.seqs() == []
    assert slow.cancelled == [0]
    assert sink.frames(kind=CancelFrame)[0].reason == "test"


async def test_nothing_is_left_running_after_end_or_cancel() -> None:
    def blocking() -> int:
        time.sleep(0.01)
        return 1

    class Threaded(Processor):
        async def process_frame(self, frame: Frame, direction) -> None:
            if isinstance(frame, Data):
                await self.run_blocking(blocking)
            await self.push(frame, direction)

    before = set(asyncio.all_tasks())
    for stop in ("end", "cancel"):
        task = PipelineTask(Pipeline([Slow(0.01), Threaded(queued=True), Processor(queued=True)]))
        async with anyio.create_task_group() as tg:
            tg.start_soon(task.run)
            await task.queue_frames([Data(seq=i) for i in range(5)])
            if stop == "end":
                await task.stop_when_done()
            else:
                await anyio.sleep(0.02)
                await task.cancel()
        assert task.finished
        assert set(asyncio.all_tasks()) == before


def test_no_thread_outlives_the_event_loop() -> None:
    before = set(threading.enumerate())

    def blocking() -> None:
        time.sleep(0.005)

    class Threaded(Processor):
        async def process_frame(self, frame: Frame, direction) -> None:
            if isinstance(frame, Data):
                await self.run_blocking(blocking)
            await self.push(frame, direction)

    async def main() -> None:
        task = PipelineTask(Pipeline([Threaded(queued=True)]))
        await task.queue_frames([Data(seq=i) for i in range(3)])
        await task.stop_when_done()
        await task.run()

    anyio.run(main)
    deadline = time.monotonic() + 5

    def started_here() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]

    while started_here() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started_here() == []


async def test_a_failing_processor_reports_upstream_and_the_pipeline_goes_on() -> None:
    sink = Recorder()
    task = PipelineTask(Pipeline([Processor(queued=True), Boom({2}), sink]))
    await task.queue_frames([Data(seq=i) for i in range(4)])
    await task.stop_when_done()
    assert await task.run() is EndReason.ENDED
    assert sink.seqs() == [0, 1, 3]
    [error] = task.errors
    assert error.processor == "boom"
    assert error.message == "boom failed on Data: ValueError: cannot take 2"
    assert isinstance(error.exception, ValueError)


async def test_error_policy_cancel_stops_the_task() -> None:
    sink = Recorder()
    task = PipelineTask(Pipeline([Boom({1}), Slow(0.01), sink]), TaskParams(error_policy="cancel"))
    await task.queue_frames([Data(seq=i) for i in range(50)])
    assert await task.run() is EndReason.ERROR
    assert len(task.errors) == 1
    assert len(sink.seqs()) < 50


async def test_error_policy_end_stops_gracefully() -> None:
    sink = Recorder()
    task = PipelineTask(Pipeline([Boom({1}), sink]), TaskParams(error_policy="end"))
    await task.queue_frames([Data(seq=i) for i in range(3)])
    assert await task.run() is EndReason.ENDED
    assert sink.seqs()[:1] == [0]


async def test_fatal_error_cancels_whatever_the_policy() -> None:
    class Fatal(Processor):
        async def on_start(self, frame: StartFrame) -> None:
            await self.push_error("device gone", fatal=True, code="E1")

    task = PipelineTask(Pipeline([Fatal(name="fatal")]))
    assert await task.run() is EndReason.ERROR
    assert task.errors[0].code == "E1"
    assert task.errors[0].message == "device gone"


async def test_idle_timeout_cancels_a_silent_task() -> None:
    task = PipelineTask(Pipeline([Processor()]), TaskParams(idle_timeout_s=0.1))
    with anyio.fail_after(5):
        assert await task.run() is EndReason.IDLE


async def test_queueing_into_a_finished_task_is_an_error() -> None:
    task = PipelineTask(Pipeline([Processor()]))
    await task.stop_when_done()
    await task.run()
    with pytest.raises(TaskFinishedError, match="accepts no more frames"):
        await task.queue_frame(Data(seq=1))


async def test_end_after_cancel_is_refused_and_stop_is_a_no_op() -> None:
    task = PipelineTask(Pipeline([Slow(1.0)]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await wait_until(lambda: task.running)
        await task.cancel()
        await task.stop_when_done()  # no effect, no error
        with pytest.raises(TaskFinishedError):
            await task.queue_frame(EndFrame())
    assert task.end_reason is EndReason.CANCELLED


async def test_cancel_before_run_means_run_returns_at_once() -> None:
    task = PipelineTask(Pipeline([Processor()]))
    await task.cancel()
    with pytest.raises(RuntimeError, match="already run"):
        await task.run()


async def test_a_task_runs_once_and_refuses_non_frames() -> None:
    task = PipelineTask(Pipeline([Processor()]))
    with pytest.raises(TypeError, match="takes a Frame, got str"):
        await task.queue_frame("hello")  # type: ignore[arg-type]
    await task.stop_when_done()
    await task.run()
    with pytest.raises(RuntimeError, match="already run"):
        await task.run()


def test_task_params_are_validated() -> None:
    with pytest.raises(ValueError, match="error_policy"):
        TaskParams(error_policy="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idle_timeout_s"):
        TaskParams(idle_timeout_s=0)


async def test_runner_returns_the_end_reason() -> None:
    task = PipelineTask(Pipeline([Processor()]))
    await task.queue_frame(InterruptionFrame())
    await task.stop_when_done()
    assert await PipelineRunner(handle_signals=False).run(task) is EndReason.ENDED


async def test_a_stage_whose_start_hook_fails_reports_and_the_rest_still_start() -> None:
    started: list[str] = []

    class Broken(Processor):
        async def on_start(self, frame: StartFrame) -> None:
            raise OSError("model file missing")

    class Marks(Processor):
        async def on_start(self, frame: StartFrame) -> None:
            started.append(self.name)

    sink = Recorder()
    task = PipelineTask(Pipeline([Broken(name="broken"), Marks(name="after"), sink]))
    await task.queue_frame(Data(seq=1))
    await task.stop_when_done()
    assert await task.run() is EndReason.ENDED
    assert started == ["after"]
    assert sink.seqs() == [1]
    [error] = task.errors
    assert error.message == "broken failed in its hook for StartFrame: OSError: model file missing"


async def test_an_observer_added_before_run_sees_the_pushes_and_not_after() -> None:
    from framework.observer import Observer

    class Seen(Observer):
        def __init__(self) -> None:
            self.seqs: list[int] = []

        def on_push(self, source, destination, frame, direction, timestamp_ns) -> None:
            if isinstance(frame, Data) and destination is not None and destination.name == "sink":
                self.seqs.append(frame.seq)

    seen = Seen()
    sink = Recorder()
    sink.name = "sink"
    task = PipelineTask(Pipeline([Processor(), sink]))
    task.add_observer(seen)
    await task.queue_frames([Data(seq=i) for i in range(3)])
    await task.stop_when_done()
    await task.run()
    assert seen.seqs == [0, 1, 2]
    with pytest.raises(RuntimeError, match="before run"):
        task.add_observer(Seen())
