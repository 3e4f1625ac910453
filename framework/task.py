"""PipelineTask: runs a pipeline and owns its lifecycle, its tasks and its errors.

A task wraps the pipeline between a queued source (where frames from outside
enter, in order) and a sink (where the End frame tells the task it has drained).

* :meth:`PipelineTask.stop_when_done` queues an End frame: everything queued
  before it is processed, then the task stops.
* :meth:`PipelineTask.cancel` sends a Cancel frame past every queue and stops at once.
* An idle timeout cancels a task that saw no frame for too long.
* Error frames reaching the top of the pipeline are recorded in
  :attr:`PipelineTask.errors`; the error policy decides whether the task goes on.
  A fatal error (a stage that failed on End or Cancel is one) stops the task, and
  it ends with :attr:`EndReason.ERROR` however it stops.
* A stage that fails in its cleanup does not keep the others from cleaning up;
  the failure is recorded in :attr:`PipelineTask.errors`.

Frames queued before :meth:`run` wait and flow once the task has started;
queueing into a task that has finished or is being cancelled raises
:class:`~framework.errors.TaskFinishedError`. Every background task a processor
starts lives in the task's task group, so nothing is left running after ``run``
returns.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio

from framework.errors import CleanupError, TaskFinishedError
from framework.frames.base import Direction, Frame
from framework.frames.lifecycle import CancelFrame, EndFrame, ErrorFrame, StartFrame
from framework.observer import Observer
from framework.processor import Processor, ProcessorContext

__all__ = ["EndReason", "PipelineTask", "TaskParams"]

log = logging.getLogger("parley")

ErrorPolicy = Literal["continue", "end", "cancel"]


@dataclass(frozen=True, slots=True)
class TaskParams:
    """Settings of a task.

    ``error_policy`` says what a non-fatal error does: ``continue`` records it,
    ``end`` stops gracefully, ``cancel`` stops at once. Fatal errors always cancel.
    ``idle_timeout_s`` cancels the task when no frame has moved for that long.
    ``cleanup_timeout_s`` bounds how long processors may take to clean up, and how
    long a Cancel frame may take to pass the pipeline.
    """

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    allow_interruptions: bool = True
    error_policy: ErrorPolicy = "continue"
    idle_timeout_s: float | None = None
    cleanup_timeout_s: float = 5.0
    name: str = "task"

    def __post_init__(self) -> None:
        if self.error_policy not in ("continue", "end", "cancel"):
            raise ValueError(
                f"error_policy must be 'continue', 'end' or 'cancel', got {self.error_policy!r}"
            )
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {self.idle_timeout_s}")


class EndReason(enum.Enum):
    """Why a task stopped."""

    ENDED = "ended"
    CANCELLED = "cancelled"
    IDLE = "idle timeout"
    ERROR = "error"


class _State(enum.Enum):
    NEW = 0
    RUNNING = 1
    ENDING = 2
    CANCELLING = 3
    FINISHED = 4


class _TaskSource(Processor):
    """Head of a task: queues frames from outside in order; catches what comes back up."""

    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}.source", queued=True)
        self._task = task

    async def receive(self, frame: Frame, direction: Direction) -> None:
        if direction is Direction.UPSTREAM:
            self._task._upstream_arrived(frame)
            return
        if self._task._watch_idle_enabled:
            self._task._touch()
        await super().receive(frame, direction)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, exception groups flattened."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class _TaskSink(Processor):
    """Tail of a task: the End or Cancel frame arriving here means the pipeline is done."""

    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}.sink")
        self._task = task

    async def receive(self, frame: Frame, direction: Direction) -> None:
        if self._task._watch_idle_enabled:
            self._task._touch()
        if isinstance(frame, (EndFrame, CancelFrame)):
            self._task._finish(
                EndReason.ENDED if isinstance(frame, EndFrame) else self._task._cancel_reason
            )


@dataclass(slots=True)
class _Outcome:
    reason: EndReason | None = None
    errors: list[ErrorFrame] = field(default_factory=list)


class PipelineTask:
    """Runs ``pipeline`` until it ends, is cancelled, idles out or fails by policy."""

    def __init__(
        self,
        pipeline: Processor,
        params: TaskParams | None = None,
        *,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.params = params or TaskParams()
        self.name = self.params.name
        self.pipeline = pipeline
        self._observers = tuple(observers)
        self._source = _TaskSource(self)
        self._sink = _TaskSink(self)
        self._source.link(pipeline)
        pipeline.link(self._sink)
        self._state = _State.NEW
        self._waiting: list[Frame] = []
        self._finished: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._outcome = _Outcome()
        self._cancel_reason = EndReason.CANCELLED
        self._failed = False  # a fatal error arrived: the task ends with ERROR
        self._last_activity = time.monotonic()
        # Frames reset the idle clock only when there is an idle timeout to watch.
        self._watch_idle_enabled = self.params.idle_timeout_s is not None

    # ------------------------------------------------------------ public API

    @property
    def errors(self) -> list[ErrorFrame]:
        """Every error frame that reached the top of the pipeline, in order."""
        return list(self._outcome.errors)

    @property
    def end_reason(self) -> EndReason | None:
        """Why the task stopped, or None while it runs."""
        return self._outcome.reason

    @property
    def running(self) -> bool:
        """True between the start of :meth:`run` and the end of the pipeline."""
        return self._state in (_State.RUNNING, _State.ENDING)

    @property
    def finished(self) -> bool:
        """True once the task has stopped for any reason."""
        return self._state is _State.FINISHED

    def add_observer(self, observer: Observer) -> None:
        """Add an observer; only before :meth:`run` (the processors take them when it starts)."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"task {self.name!r} has started; add observers before run()")
        self._observers = (*self._observers, observer)

    async def queue_frame(self, frame: Frame) -> None:
        """Send ``frame`` into the pipeline (downstream, in order behind earlier frames).

        System frames pass queued data at once. Before :meth:`run` starts, frames wait.
        """
        if not isinstance(frame, Frame):
            raise TypeError(f"queue_frame() takes a Frame, got {type(frame).__name__}")
        if self._state in (_State.CANCELLING, _State.FINISHED):
            raise TaskFinishedError(
                f"task {self.name!r} has {self._state.name.lower()}; it accepts no more frames "
                f"({type(frame).__name__} refused). Create a new task to go on."
            )
        if isinstance(frame, EndFrame):
            if self._state is _State.ENDING:
                return
            if self._state is _State.RUNNING:
                self._state = _State.ENDING
        if self._state is _State.NEW:
            self._waiting.append(frame)
            return
        await self._source.receive(frame, Direction.DOWNSTREAM)

    async def queue_frames(self, frames: Iterable[Frame]) -> None:
        """Queue several frames in order."""
        for frame in frames:
            await self.queue_frame(frame)

    async def stop_when_done(self) -> None:
        """Queue an End frame: finish the queued work, then stop. Does nothing if stopping."""
        if self._state in (_State.CANCELLING, _State.FINISHED, _State.ENDING):
            return
        await self.queue_frame(EndFrame())

    async def cancel(self, reason: str = "") -> None:
        """Stop at once: a Cancel frame passes every queue. Does nothing if already stopped."""
        await self._cancel(EndReason.CANCELLED, reason)

    async def run(self) -> EndReason:
        """Run the pipeline until it stops; returns why. A task runs once."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"task {self.name!r} has already run; create a new task")
        self._finished = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                context = ProcessorContext(tg, self._observers, self.name)
                for processor in (self._source, self.pipeline, self._sink):
                    await processor.setup(context)
                self._state = _State.RUNNING
                self._touch()
                await self._source.receive(self._start_frame(), Direction.DOWNSTREAM)
                waiting, self._waiting = self._waiting, []
                for frame in waiting:
                    if isinstance(frame, EndFrame):
                        self._state = _State.ENDING
                    await self._source.receive(frame, Direction.DOWNSTREAM)
                if self.params.idle_timeout_s is not None:
                    tg.start_soon(self._watch_idle, self.params.idle_timeout_s)
                await self._finished.wait()
                tg.cancel_scope.cancel()
        finally:
            failure: Exception | None = None
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(self.params.cleanup_timeout_s) as cleanup_scope,
            ):
                try:
                    await self.pipeline.cleanup()
                except Exception as exc:
                    failure = exc
            if failure is not None:
                self._cleanup_failed(failure)
            if cleanup_scope.cancelled_caught:
                log.warning(
                    "%s: cleanup took over %.1f s", self.name, self.params.cleanup_timeout_s
                )
            if self._outcome.reason is None:
                self._outcome.reason = EndReason.CANCELLED
            self._state = _State.FINISHED
            self._task_group = None
        return self._outcome.reason

    # ------------------------------------------------------------- internals

    def _start_frame(self) -> StartFrame:
        p = self.params
        return StartFrame(
            audio_in_sample_rate=p.audio_in_sample_rate,
            audio_out_sample_rate=p.audio_out_sample_rate,
            allow_interruptions=p.allow_interruptions,
        )

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _finish(self, reason: EndReason) -> None:
        if self._outcome.reason is None:
            self._outcome.reason = EndReason.ERROR if self._failed else reason
        if self._finished is not None:
            self._finished.set()

    async def _cancel(self, reason: EndReason, message: str) -> None:
        if self._state in (_State.CANCELLING, _State.FINISHED) or self._outcome.reason is not None:
            return  # stopping already, or the End frame has arrived: nothing to cancel
        if self._state is _State.NEW:
            self._state = _State.FINISHED
            self._outcome.reason = reason
            return
        self._state = _State.CANCELLING
        self._cancel_reason = reason
        limit = self.params.cleanup_timeout_s
        try:
            with anyio.move_on_after(limit) as scope:
                await self._source.receive(CancelFrame(reason=message), Direction.DOWNSTREAM)
            if scope.cancelled_caught:
                log.warning(
                    "%s: the Cancel frame took over %.1f s; stopping anyway", self.name, limit
                )
        finally:
            self._finish(reason)

    def _upstream_arrived(self, frame: Frame) -> None:
        if not isinstance(frame, ErrorFrame):
            return
        self._outcome.errors.append(frame)
        log.warning("%s: error from %s: %s", self.name, frame.processor, frame.message)
        if frame.fatal:
            self._failed = True
            self._cancel_reason = EndReason.ERROR
        policy = "cancel" if frame.fatal else self.params.error_policy
        if policy == "continue" or self._task_group is None:
            return
        if policy == "cancel":
            self._task_group.start_soon(self._cancel, EndReason.ERROR, frame.message)
        else:
            self._task_group.start_soon(self.stop_when_done)

    def _cleanup_failed(self, failure: Exception) -> None:
        for leaf in _leaves(failure):
            processor = getattr(leaf, "processor", self.pipeline.name)
            message = (
                str(leaf)
                if isinstance(leaf, CleanupError)
                else (f"{processor} failed in cleanup: {type(leaf).__name__}: {leaf}")
            )
            log.warning("%s: %s", self.name, message)
            log.debug("%s: cleanup failure", self.name, exc_info=leaf)
            self._outcome.errors.append(
                ErrorFrame(message=message, processor=processor, exception=leaf)
            )

    async def _watch_idle(self, timeout_s: float) -> None:
        while True:
            remaining = self._last_activity + timeout_s - time.monotonic()
            if remaining <= 0:
                log.info("%s: no frame for %.1f s, cancelling", self.name, timeout_s)
                await self._cancel(EndReason.IDLE, "idle timeout")
                return
            await anyio.sleep(remaining)
