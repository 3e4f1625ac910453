"""A stage that fails while the task stops: on End, on Cancel, in cleanup.

Each test runs under ``anyio.fail_after``: a task that waits for ever fails the test
instead of hanging it.
"""

from __future__ import annotations

import anyio
import pytest

from framework import EndReason, Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import CancelFrame, EndFrame, Frame

from .helpers import Data, Recorder, wait_until

pytestmark = pytest.mark.anyio

LIMIT_S = 20  # generous: only a hang comes near it


class FailsOn(Processor):
    """Raises in its handler for ``frame_type`` (the frame then goes no further)."""

    def __init__(self, frame_type: type[Frame], *, queued: bool = False) -> None:
        super().__init__(name="fragile", queued=queued)
        self.frame_type = frame_type

    async def process_frame(self, frame: Frame, direction) -> None:
        if isinstance(frame, self.frame_type):
            raise OSError(f"cannot finish on {type(frame).__name__}")
        await self.push(frame, direction)


class HookFails(Processor):
    """Raises in on_end or on_cancel; the frame itself still goes on."""

    def __init__(self) -> None:
        super().__init__(name="hooked")

    async def on_end(self, frame: EndFrame) -> None:
        raise OSError("end hook broke")

    async def on_cancel(self, frame: CancelFrame) -> None:
        raise OSError("cancel hook broke")


class Cleans(Processor):
    """Counts its cleanups; raises in cleanup when told to."""

    def __init__(self, name: str, *, fails: bool = False) -> None:
        super().__init__(name=name)
        self.fails = fails
        self.cleaned = 0

    async def cleanup(self) -> None:
        self.cleaned += 1
        if self.fails:
            raise OSError(f"{self.name} could not close")


async def run_and_cancel(task: PipelineTask) -> None:
    """Start ``task``, cancel it once it runs, and wait until it has finished."""
    with anyio.fail_after(LIMIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(task.run)
            await wait_until(lambda: task.running)
            await task.cancel("stop")
            await wait_until(lambda: task.finished)


@pytest.mark.parametrize("queued", [False, True])
async def test_a_stage_failing_on_end_ends_the_task_with_its_error(queued: bool) -> None:
    after = Recorder("after")
    task = PipelineTask(Pipeline([Recorder("before"), FailsOn(EndFrame, queued=queued), after]))
    await task.queue_frames([Data(seq=1), Data(seq=2), EndFrame()])
    with anyio.fail_after(LIMIT_S):
        reason = await task.run()
    assert reason is EndReason.ERROR
    [error] = task.errors
    assert error.processor == "fragile"
    assert "failed on EndFrame: OSError: cannot finish on EndFrame" in error.message
    assert after.seqs() == [1, 2]  # the work before the End was done
    assert after.frames(kind=CancelFrame)  # the rest of the pipeline was stopped


async def test_a_failing_end_hook_ends_the_task_with_its_error() -> None:
    task = PipelineTask(Pipeline([HookFails(), Recorder()]))
    await task.queue_frames([Data(seq=1), EndFrame()])
    with anyio.fail_after(LIMIT_S):
        reason = await task.run()
    assert reason is EndReason.ERROR
    assert [e.message for e in task.errors] == [
        "hooked failed in its hook for EndFrame: OSError: end hook broke"
    ]


@pytest.mark.parametrize("stage", ["handler", "hook"])
async def test_a_stage_failing_on_cancel_ends_the_task_with_its_error(stage: str) -> None:
    fragile = FailsOn(CancelFrame) if stage == "handler" else HookFails()
    task = PipelineTask(Pipeline([Recorder(), fragile, Recorder()]))
    await run_and_cancel(task)
    assert task.end_reason is EndReason.ERROR
    [error] = task.errors
    assert "CancelFrame: OSError:" in error.message
    assert error.fatal


async def test_a_stage_that_never_finishes_its_cancel_does_not_hold_the_task() -> None:
    class Stuck(Processor):
        async def on_cancel(self, frame: CancelFrame) -> None:
            await anyio.sleep_forever()

    task = PipelineTask(Pipeline([Stuck(), Recorder()]), TaskParams(cleanup_timeout_s=0.3))
    await run_and_cancel(task)
    assert task.end_reason is EndReason.CANCELLED


async def test_every_stage_cleans_up_when_some_fail_and_the_failures_are_recorded() -> None:
    first, second = Cleans("first", fails=True), Cleans("second")
    inner_bad, inner_good = Cleans("inner_bad", fails=True), Cleans("inner_good")
    task = PipelineTask(Pipeline([first, Pipeline([inner_bad, inner_good]), second]))
    await task.queue_frame(EndFrame())
    with anyio.fail_after(LIMIT_S):
        reason = await task.run()
    assert reason is EndReason.ENDED  # the conversation itself ended; its cleanup did not
    assert [s.cleaned for s in (first, inner_bad, inner_good, second)] == [1, 1, 1, 1]
    assert [(e.processor, e.message) for e in task.errors] == [
        ("first", "first failed in cleanup: OSError: first could not close"),
        ("inner_bad", "inner_bad failed in cleanup: OSError: inner_bad could not close"),
    ]


async def test_a_single_processor_failing_in_cleanup_is_recorded() -> None:
    lone = Cleans("lone", fails=True)
    task = PipelineTask(lone)
    await task.queue_frame(EndFrame())
    with anyio.fail_after(LIMIT_S):
        await task.run()
    [error] = task.errors
    assert error.message == "lone failed in cleanup: OSError: lone could not close"
