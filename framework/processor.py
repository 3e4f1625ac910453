"""The processor: the one building block every stage and pipeline is made of.

A processor receives a frame and a direction, does its work, and pushes frames on.
By default a processor runs *inline*: pushing a frame awaits the next processor
directly, so a hop costs about a function call. A processor created with
``queued=True`` owns a queue and a worker task for its data and control frames,
for stages that do slow work (inference, paced playback); system frames still go
straight through it, so they are never stuck behind a backlog.

Subclasses handle frame types with methods marked :func:`handles`; frames
without a handler are pushed on unchanged::

    class Shout(Processor):
        @handles(TextFrame)
        async def _text(self, frame: TextFrame, direction: Direction) -> None:
            await self.push(TextFrame(text=frame.text.upper()), direction)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from framework.capabilities import Capabilities
from framework.errors import LinkError
from framework.frames.base import Direction, Frame, FrameKind
from framework.frames.lifecycle import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    InterruptionFrame,
    StartFrame,
)

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from framework.observer import Observer

__all__ = ["Processor", "ProcessorContext", "handles"]

log = logging.getLogger("parley")

DOWNSTREAM = Direction.DOWNSTREAM
UPSTREAM = Direction.UPSTREAM
_SYSTEM = FrameKind.SYSTEM
_HANDLES_ATTR = "__parley_handles__"
_counter = itertools.count(1)

F = TypeVar("F", bound=Callable[..., Awaitable[None]])
P = ParamSpec("P")
T = TypeVar("T")


class _Work:
    """One droppable frame being processed by a worker; flagged when interrupted.

    Cancelling a cancel scope takes effect at the worker's next checkpoint, which
    can come after the worker has resumed and pushed its result. The flag closes
    that gap: pushes of droppable frames made on behalf of flagged work are
    discarded at once, however far down an inline chain they happen.
    """

    __slots__ = ("cancelled", "scope", "task_id")

    def __init__(self, scope: anyio.CancelScope, task_id: int) -> None:
        self.cancelled = False
        self.scope = scope
        self.task_id = task_id  # the worker's task: tasks it starts inherit the context


_current_work: ContextVar[_Work | None] = ContextVar("parley_current_work", default=None)


def handles(*frame_types: type[Frame]) -> Callable[[F], F]:
    """Mark an ``async def method(self, frame, direction)`` as the handler of ``frame_types``.

    A handler also receives subclasses of the types it names, unless a more
    specific handler exists. The handler decides whether to push the frame on.
    """
    if not frame_types:
        raise TypeError("handles() needs at least one frame type")
    for t in frame_types:
        if not (isinstance(t, type) and issubclass(t, Frame)):
            raise TypeError(f"handles() takes Frame subclasses, got {t!r}")

    def mark(fn: F) -> F:
        setattr(fn, _HANDLES_ATTR, frame_types)
        return fn

    return mark


@dataclass(slots=True)
class ProcessorContext:
    """What a running task gives each processor: its task group and observers."""

    task_group: TaskGroup
    observers: tuple[Observer, ...] = ()
    task_name: str = ""


class Processor:
    """Base class of every stage; see the module docstring for the execution model.

    Hooks to override, all optional: :meth:`on_start`, :meth:`on_end`,
    :meth:`on_cancel`, :meth:`on_interruption`, :meth:`setup`, :meth:`cleanup`.
    """

    capabilities: Capabilities = Capabilities()
    """What this processor can do; see :class:`~framework.capabilities.Capabilities`."""

    _handler_names: ClassVar[dict[type[Frame], str]] = {}
    _resolved: ClassVar[dict[type[Frame], str | None]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type[Frame], str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for frame_type in getattr(value, _HANDLES_ATTR, ()):
                    table[frame_type] = attr
        cls._handler_names = table
        cls._resolved = {}

    def __init__(self, *, name: str | None = None, queued: bool = False) -> None:
        self.name: str = name or f"{type(self).__name__}#{next(_counter)}"
        self._next: Processor | None = None
        self._prev: Processor | None = None
        self._parent: Processor | None = None
        self._observers: tuple[Observer, ...] = ()
        self._context: ProcessorContext | None = None
        self._queue: deque[tuple[Frame, Direction]] | None = deque() if queued else None
        # What the worker waits on when its queue is empty: a bare future on asyncio
        # (an anyio Event costs a backend look-up each time), an anyio Event elsewhere.
        self._wakeup: asyncio.Future[None] | anyio.Event | None = None
        self._work: _Work | None = None
        self._doomed: _Work | None = None

    # ----------------------------------------------------------------- wiring

    @property
    def queued(self) -> bool:
        """True if data and control frames wait in this processor's own queue."""
        return self._queue is not None

    @property
    def queue_size(self) -> int:
        """Frames waiting in this processor's queue (0 for an inline processor)."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def next(self) -> Processor | None:
        """The processor downstream of this one, if linked."""
        return self._next

    @property
    def previous(self) -> Processor | None:
        """The processor upstream of this one, if linked."""
        return self._prev

    @property
    def context(self) -> ProcessorContext:
        """The running task's context. Raises if the processor has not been set up."""
        if self._context is None:
            raise RuntimeError(f"{self.name} is not running: add it to a pipeline and run a task")
        return self._context

    def link(self, downstream: Processor) -> None:
        """Connect ``downstream`` after this processor. Each side can be linked once."""
        if downstream is self:
            raise LinkError(f"{self.name} cannot be linked to itself")
        if self._next is not None:
            raise LinkError(
                f"{self.name} is already linked to {self._next.name}; "
                "a processor can sit in one place only, create a new instance"
            )
        if downstream._prev is not None:
            raise LinkError(
                f"{downstream.name} is already linked after {downstream._prev.name}; "
                "a processor can sit in one place only, create a new instance"
            )
        self._next = downstream
        downstream._prev = self

    def _adopt(self, parent: Processor) -> None:
        if self._parent is not None:
            raise LinkError(
                f"{self.name} already belongs to {self._parent.name}; "
                "a processor can sit in one pipeline only, create a new instance"
            )
        self._parent = parent

    def walk(self) -> list[Processor]:
        """This processor and, for containers, every processor inside it."""
        return [self]

    # -------------------------------------------------------------- lifecycle

    async def setup(self, context: ProcessorContext) -> None:
        """Attach to a running task. Queued processors start their worker here."""
        self._context = context
        self._observers = context.observers
        if self._queue is not None:
            context.task_group.start_soon(self._run_worker, name=f"{self.name}.worker")

    async def cleanup(self) -> None:
        """Release resources when the task ends (after End or Cancel). Override to close things."""

    async def on_start(self, frame: StartFrame) -> None:
        """Called when the Start frame reaches this processor, before it is pushed on."""

    async def on_end(self, frame: EndFrame) -> None:
        """Called when the End frame reaches this processor: all earlier work is done."""

    async def on_cancel(self, frame: CancelFrame) -> None:
        """Called when the Cancel frame reaches this processor."""

    async def on_interruption(
        self, frame: InterruptionFrame, dropped: Sequence[tuple[Frame, Direction]]
    ) -> None:
        """Called on an interruption after queued frames were dropped and work flagged.

        In-flight work is flagged (anything it pushes from now on is discarded) and
        its cancel scope is cancelled once the interruption has gone on downstream.

        ``dropped`` lists the queued frames that were discarded, in queue order
        (an output transport uses it to tell how much of a sentence was heard).
        Override to stop work the processor runs outside its worker (threads, sockets).
        """

    # ---------------------------------------------------------- frame flow

    async def receive(self, frame: Frame, direction: Direction) -> None:
        """Entry point used by the previous processor (or a task) to hand a frame over."""
        queue = self._queue
        if queue is None or frame.kind is _SYSTEM:
            await self._dispatch(frame, direction)
            return
        queue.append((frame, direction))
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if isinstance(wakeup, asyncio.Future):
                if not wakeup.done():  # not cancelled with the worker
                    wakeup.set_result(None)
            else:
                wakeup.set()

    async def push(self, frame: Frame, direction: Direction = DOWNSTREAM) -> None:
        """Send ``frame`` to the next processor in ``direction``.

        A droppable frame pushed on behalf of work that an interruption cancelled
        is discarded (by the worker's own task: a task the work started lives on).
        """
        if frame.kind is not _SYSTEM:
            work = _current_work.get()
            if (
                work is not None
                and work.cancelled
                and frame.droppable
                and anyio.get_current_task().id == work.task_id
            ):
                return
        target = self._next if direction is DOWNSTREAM else self._prev
        if self._observers:
            now = time.monotonic_ns()
            for observer in self._observers:
                observer.on_push(self, target, frame, direction, now)
        if target is not None:
            await target.receive(frame, direction)

    async def push_error(
        self,
        message: str,
        *,
        exception: BaseException | None = None,
        code: str = "",
        fatal: bool = False,
    ) -> None:
        """Report a failure upstream as an :class:`ErrorFrame`; the task's policy decides."""
        await self.push(
            ErrorFrame(
                message=message, processor=self.name, code=code, fatal=fatal, exception=exception
            ),
            UPSTREAM,
        )

    def report_event(self, event: str, timestamp_ns: int | None = None, **fields: Any) -> None:
        """Tell the task's observers about an event that is not a frame.

        ``timestamp_ns`` defaults to now. Cheap when nobody observes.
        """
        if not self._observers:
            return
        when = time.monotonic_ns() if timestamp_ns is None else timestamp_ns
        for observer in self._observers:
            observer.on_event(self, event, when, fields)

    async def broadcast_interruption(self) -> None:
        """Interrupt the whole pipeline: send an interruption both ways, then handle it here.

        Safe to call from this processor's own worker: its own in-flight work is
        cancelled last, after the frames have left.
        """
        frame = InterruptionFrame()
        await self.push(frame, UPSTREAM)
        await self.push(InterruptionFrame(), DOWNSTREAM)
        await self._interrupt(frame)
        self._cancel_doomed()

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        """Handle one frame. The default runs the :func:`handles` handler or pushes it on."""
        frame_type = type(frame)
        resolved = self._resolved
        attr = resolved[frame_type] if frame_type in resolved else self._resolve(frame_type)
        if attr is None:
            await self.push(frame, direction)
        else:
            await getattr(self, attr)(frame, direction)

    @classmethod
    def _resolve(cls, frame_type: type[Frame]) -> str | None:
        attr: str | None = None
        for klass in frame_type.__mro__:
            if klass in cls._handler_names:
                attr = cls._handler_names[klass]
                break
        cls._resolved[frame_type] = attr
        return attr

    async def run_blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn`` in a worker thread so the event loop stays free."""
        if kwargs:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        return await anyio.to_thread.run_sync(fn, *args)

    # --------------------------------------------------------------- internals

    async def _dispatch(self, frame: Frame, direction: Direction) -> None:
        hook = _LIFECYCLE_HOOKS.get(type(frame))
        if hook is not None:
            # A failing hook is reported, and the lifecycle frame still travels on:
            # one stage that cannot start must not keep the others from starting.
            try:
                await hook(self, frame)
            except Exception as exc:
                await self._report_failure(frame, exc, "in its hook for")
        try:
            await self.process_frame(frame, direction)
        except Exception as exc:  # a failing stage reports; the task's policy decides
            await self._report_failure(frame, exc, "on")
        finally:
            if hook is not None:
                self._cancel_doomed()

    async def _report_failure(self, frame: Frame, exc: Exception, where: str) -> None:
        """Report a failure on ``frame`` upstream.

        A failure on an End or Cancel frame is fatal: the frame may not have gone on,
        and a task waiting for it must not wait for ever; it ends with this error.
        """
        if isinstance(frame, ErrorFrame):  # reporting an error failed: do not loop
            log.error("%s failed while passing on %s", self.name, frame, exc_info=exc)
            return
        log.debug("%s failed %s %s", self.name, where, frame.name, exc_info=exc)
        await self.push_error(
            f"{self.name} failed {where} {type(frame).__name__}: {type(exc).__name__}: {exc}",
            exception=exc,
            fatal=isinstance(frame, EndFrame | CancelFrame),
        )

    async def _interrupt(self, frame: InterruptionFrame) -> None:
        queue = self._queue
        dropped: list[tuple[Frame, Direction]] = []
        if queue is not None:
            if queue:
                kept: list[tuple[Frame, Direction]] = []
                for item in queue:
                    (dropped if item[0].droppable else kept).append(item)
                queue.clear()
                queue.extend(kept)
            self._cancel_work()
        await self.on_interruption(frame, dropped)

    async def _cancel(self, frame: CancelFrame) -> None:
        if self._queue is not None:
            self._queue.clear()
            self._cancel_work()
        await self.on_cancel(frame)

    def _cancel_work(self) -> None:
        # Flag now (pushes of the flagged work are discarded at once); cancel the
        # scope after the interruption or cancel frame has gone on, because
        # CancelScope.cancel() costs about 0.1 ms and nothing should wait for it.
        work = self._work
        if work is not None and not work.cancelled:
            work.cancelled = True
            self._doomed = work

    def _cancel_doomed(self) -> None:
        doomed, self._doomed = self._doomed, None
        if doomed is not None:
            doomed.scope.cancel()

    async def _run_worker(self) -> None:
        # One cancel scope serves frame after frame until a cancellation is asked
        # for; the loop then leaves it before taking another frame, so a
        # cancellation delivered late can only land on the work it was meant for.
        queue = self._queue
        assert queue is not None
        task_id = anyio.get_current_task().id
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # another backend than asyncio
            loop = None
        while True:
            with anyio.CancelScope() as scope:
                while not scope.cancel_called:
                    while not queue:
                        if loop is not None:
                            future = self._wakeup = loop.create_future()
                            await future
                        else:
                            event = self._wakeup = anyio.Event()
                            await event.wait()
                    frame, direction = queue.popleft()
                    if not frame.droppable:
                        await self._dispatch(frame, direction)
                        continue
                    work = self._work = _Work(scope, task_id)
                    token = _current_work.set(work)
                    try:
                        await self._dispatch(frame, direction)
                    finally:
                        _current_work.reset(token)
                        self._work = None
            self._wakeup = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


async def _on_start(processor: Processor, frame: Frame) -> None:
    assert isinstance(frame, StartFrame)
    await processor.on_start(frame)


async def _on_end(processor: Processor, frame: Frame) -> None:
    assert isinstance(frame, EndFrame)
    await processor.on_end(frame)


async def _on_cancel(processor: Processor, frame: Frame) -> None:
    assert isinstance(frame, CancelFrame)
    await processor._cancel(frame)


async def _on_interruption(processor: Processor, frame: Frame) -> None:
    assert isinstance(frame, InterruptionFrame)
    await processor._interrupt(frame)


_LIFECYCLE_HOOKS: dict[type[Frame], Callable[[Processor, Frame], Awaitable[None]]] = {
    StartFrame: _on_start,
    EndFrame: _on_end,
    CancelFrame: _on_cancel,
    InterruptionFrame: _on_interruption,
}
