"""Small processors used by the engine tests to drive and observe pipelines."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from framework import Direction, Frame, Processor
from framework.frames import ControlFrame, DataFrame, SystemFrame, Uninterruptible


@dataclass(slots=True, kw_only=True)
class Data(DataFrame):
    """A numbered data frame."""

    seq: int


@dataclass(slots=True, kw_only=True)
class Control(ControlFrame):
    """A numbered control frame."""

    seq: int


@dataclass(slots=True, kw_only=True)
class Sticky(Uninterruptible, DataFrame):
    """A numbered data frame that survives interruptions."""

    seq: int


@dataclass(slots=True, kw_only=True)
class Ping(SystemFrame):
    """A numbered system frame."""

    seq: int


class Recorder(Processor):
    """Records every frame it sees, with its direction, then passes it on."""

    def __init__(self, name: str | None = None, *, queued: bool = False) -> None:
        super().__init__(name=name, queued=queued)
        self.seen: list[tuple[Frame, Direction]] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        self.seen.append((frame, direction))
        await self.push(frame, direction)

    def frames(self, direction: Direction = Direction.DOWNSTREAM, kind: type = Frame) -> list:
        return [f for f, d in self.seen if d is direction and isinstance(f, kind)]

    def seqs(self, direction: Direction = Direction.DOWNSTREAM) -> list[int]:
        return [f.seq for f, d in self.seen if d is direction and hasattr(f, "seq")]


class Slow(Processor):
    """A queued stage that spends ``delay`` seconds on each data or control frame."""

    def __init__(self, delay: float, name: str | None = None) -> None:
        super().__init__(name=name, queued=True)
        self.delay = delay
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        seq = getattr(frame, "seq", None)
        if seq is not None and not frame.is_system:
            self.started.append(seq)
            try:
                await anyio.sleep(self.delay)
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(seq)
                raise
            self.finished.append(seq)
        await self.push(frame, direction)


class Injector(Processor):
    """A passthrough whose ``inject`` sends a frame from its position in either direction."""

    async def inject(self, frame: Frame, direction: Direction) -> None:
        await self.push(frame, direction)


async def wait_until(predicate, limit_s: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``limit_s`` seconds."""
    with anyio.fail_after(limit_s):
        while not predicate():
            await anyio.sleep(0.001)
