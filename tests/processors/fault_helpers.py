"""Helpers for the fault tests: run a conversation to its end and prove nothing is left running.

A fault test is a plain (synchronous) test that calls :func:`run_clean`: it runs
the scenario in its own event loop with ``anyio.run`` under a deadline, checks
that no other task of that loop is left when the scenario returns, then (the
loop closed, anyio's worker threads told to stop) waits boundedly for the
threads and child processes started since the test began to go away, and fails
naming those that stay, with their stacks.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from framework import EndReason, Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import ErrorFrame, Frame, LLMResponseEndFrame, StartFrame
from tests.framework.helpers import Recorder

T = TypeVar("T")
F = TypeVar("F", bound=Frame)
H = TypeVar("H", bound="Harness")


def child_pids() -> set[int]:
    """Process ids of this process's children (zombies included), read from /proc."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass(frozen=True)
class Snapshot:
    """The threads and child processes that exist at one moment."""

    threads: frozenset[int]
    children: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(frozenset(t.ident or 0 for t in threading.enumerate()), frozenset(child_pids()))

    def left(self) -> tuple[list[threading.Thread], set[int]]:
        """Threads and child processes that exist now and did not then."""
        threads = [t for t in threading.enumerate() if (t.ident or 0) not in self.threads]
        return threads, child_pids() - self.children


def assert_nothing_left(before: Snapshot, within_s: float = 20.0) -> None:
    """Wait up to ``within_s`` for everything started since ``before`` to end; fail if not."""
    deadline = time.monotonic() + within_s
    while True:
        threads, children = before.left()
        if not threads and not children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    frames = sys._current_frames()
    stacks = {
        t.name: "".join(traceback.format_stack(frames[t.ident]))
        for t in threads
        if t.ident in frames
    }
    raise AssertionError(f"left running: threads {stacks}, child processes {sorted(children)}")


def run_clean(scenario: Callable[[], Awaitable[T]], within_s: float = 180.0) -> T:
    """Run ``scenario`` in a fresh event loop under a deadline, then check nothing is left."""
    before = Snapshot.take()

    async def bounded() -> T:
        with anyio.fail_after(within_s):
            result = await scenario()
        await anyio.lowlevel.checkpoint()  # let tasks that were just cancelled finish
        stray = asyncio.all_tasks() - {asyncio.current_task()}
        assert not stray, f"tasks left running: {stray}"
        return result

    result = anyio.run(bounded)
    assert_nothing_left(before)
    return result


class Harness:
    """Stages in a task, a recorder after them (and ``after`` it, stages that must follow)."""

    def __init__(
        self,
        stages: Sequence[Processor],
        params: TaskParams | None = None,
        after: Sequence[Processor] = (),
    ) -> None:
        self.stages = list(stages)
        self.sink = Recorder("sink")
        self.task = PipelineTask(Pipeline([*stages, self.sink, *after]), params)

    def of(self, kind: type[F]) -> list[F]:
        """Frames of ``kind`` that reached the recorder, in order."""
        return list(self.sink.frames(kind=kind))

    def ended(self, n: int) -> Callable[[], bool]:
        """A predicate: ``n`` replies have ended, or the task has."""
        return lambda: len(self.of(LLMResponseEndFrame)) >= n or self.task.finished

    async def started(self) -> None:
        """Wait until every stage has started (models loaded)."""
        await wait_for(lambda: self.of(StartFrame), 60)


def converse(make: Callable[[], H], drive: Callable[[H], Awaitable[object]]) -> tuple[H, EndReason]:
    """Make a harness in a fresh event loop, run its task while ``drive`` feeds it.

    ``drive`` starts once the stages have started; it ends the task
    (``stop_when_done``) or waits for it to end. Runs under :func:`run_clean`.
    """

    async def scenario() -> tuple[H, EndReason]:
        harness = make()
        return harness, await run_task(harness, drive)

    return run_clean(scenario)


async def run_task(harness: H, drive: Callable[[H], Awaitable[object]]) -> EndReason:
    """Run the harness's task while ``drive`` feeds it (once started); returns why it stopped."""
    reason: list[EndReason] = []

    async def run() -> None:
        reason.append(await harness.task.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await harness.started()
        await drive(harness)
    return reason[0]


async def wait_for(predicate: Callable[[], object], limit_s: float = 60.0) -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail after ``limit_s``."""
    with anyio.fail_after(limit_s):
        while not predicate():
            await anyio.sleep(0.01)


def errors_of(task: PipelineTask, stage: str) -> list[ErrorFrame]:
    """The task's errors that name ``stage`` (as their processor and in their message)."""
    return [e for e in task.errors if e.processor == stage and e.message.startswith(stage)]


class Calls:
    """How many times a patched method was called, and how many of those raised."""

    def __init__(self) -> None:
        self.count = 0
        self.raised = 0


@contextmanager
def failing_calls(
    obj: Any, method: str, *, after: int = 0, times: int = 1, error: str = "injected failure"
) -> Iterator[Calls]:
    """Make ``obj.method`` raise ``RuntimeError(error)`` on calls ``after+1`` to ``after+times``.

    Every other call runs the real method. For the real backend's own objects (a
    llama.cpp context, an ONNX Runtime session): the fault is at the model boundary.
    """
    real = getattr(obj, method)
    own = method in vars(obj)  # set on the instance, not a method of its class
    calls = Calls()

    def patched(*args: Any, **kwargs: Any) -> Any:
        calls.count += 1
        if after < calls.count <= after + times:
            calls.raised += 1
            raise RuntimeError(error)
        return real(*args, **kwargs)

    setattr(obj, method, patched)
    try:
        yield calls
    finally:
        if own:
            setattr(obj, method, real)
        else:
            delattr(obj, method)  # the class's method again
