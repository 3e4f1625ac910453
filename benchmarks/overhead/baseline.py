"""The baseline: a bare "one task and one queue per stage" pipeline, no framework.

This is what a pipeline looks like when written directly on the event loop:
each of the ``N`` stages is a task that takes an item from its input queue and
puts it into the next one; a sink task at the end stamps what arrives. Two
flavours are measured, :class:`asyncio.Queue` and anyio memory object streams,
so Parley's figures can be compared with something built on the same machine,
in the same run.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any, Literal

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from benchmarks.overhead.goal import CountGoal

__all__ = ["IMPLS", "BareChain"]

Impl = Literal["asyncio.Queue", "anyio stream"]
IMPLS: tuple[Impl, ...] = ("asyncio.Queue", "anyio stream")

END = object()  # the end-of-stream marker, like Parley's EndFrame

Get = Callable[[], Awaitable[Any]]
Put = Callable[[Any], Awaitable[None]]


def _link(impl: Impl) -> tuple[Put, Get]:
    """One queue between two stages, as its ``put`` and ``get`` coroutine functions."""
    if impl == "asyncio.Queue":
        queue: asyncio.Queue[Any] = asyncio.Queue()
        return queue.put, queue.get
    send, receive = anyio.create_memory_object_stream[Any](math.inf)
    return send.send, receive.receive


async def _stage(get: Get, put: Put) -> None:
    while True:
        await put(await get())


class BareChain:
    """``n`` stage tasks linked by queues, then a sink task; mirrors :class:`~.common.Rig`."""

    def __init__(self, n: int, impl: Impl) -> None:
        self.n = n
        self.impl = impl
        self.t0s: deque[int] = deque()
        self.latencies: list[int] = []
        self.audio_count = 0
        self.last_ns = 0
        self.end_ns = 0
        self._put: Put | None = None
        self._goal = CountGoal()
        self._end_event = anyio.Event()

    async def start(self, tg: TaskGroup) -> None:
        """Start the stage and sink tasks in ``tg``."""
        put, get = _link(self.impl)
        self._put = put
        for _ in range(self.n):
            next_put, next_get = _link(self.impl)
            tg.start_soon(_stage, get, next_put)
            get = next_get
        tg.start_soon(self._sink, get)
        await anyio.lowlevel.checkpoint()

    async def push(self, item: object) -> None:
        """Put ``item`` into the first queue."""
        assert self._put is not None, "start() the chain first"
        await self._put(item)

    async def queue(self, item: object) -> None:
        """Stamp, then push ``item`` (the latency measurement's entry point)."""
        self.t0s.append(perf_counter_ns())
        await self.push(item)

    async def end(self) -> None:
        """Push the end marker and wait until it reaches the sink."""
        arrived = self._end_event
        await self.push(END)
        await arrived.wait()

    def expect(self, total: int) -> anyio.Event:
        """An event set once ``total`` items have arrived in all."""
        return self._goal.expect(self.audio_count, total)

    async def _sink(self, get: Get) -> None:
        while True:
            item = await get()
            now = perf_counter_ns()
            if item is END:
                self.end_ns = now
                self._end_event.set()
                self._end_event = anyio.Event()
                continue
            self.audio_count += 1
            self.last_ns = now
            if self.t0s:
                self.latencies.append(now - self.t0s.popleft())
            self._goal.counted(self.audio_count)
