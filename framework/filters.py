"""Small processors built from a function: filters and mappers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from framework.frames.base import Direction, Frame, FrameKind
from framework.processor import Processor

__all__ = ["FilterProcessor", "FunctionProcessor"]

Predicate = Callable[[Frame], bool] | Callable[[Frame], Awaitable[bool]]
Mapper = Callable[[Frame], Frame | None] | Callable[[Frame], Awaitable[Frame | None]]


async def _call(fn: Callable[[Frame], Any], is_async: bool, frame: Frame) -> Any:
    return await fn(frame) if is_async else fn(frame)


class FilterProcessor(Processor):
    """Passes on only the frames for which ``predicate(frame)`` is true.

    System frames always pass (a filter must not swallow Start, Cancel or an
    interruption); ``direction`` limits filtering to one direction, the other passes all.
    """

    def __init__(
        self,
        predicate: Predicate,
        *,
        direction: Direction = Direction.DOWNSTREAM,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._predicate: Callable[[Frame], Any] = predicate
        self._is_async = inspect.iscoroutinefunction(predicate)
        self._direction = direction

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if (
            direction is not self._direction
            or frame.kind is FrameKind.SYSTEM
            or await _call(self._predicate, self._is_async, frame)
        ):
            await self.push(frame, direction)


class FunctionProcessor(Processor):
    """Replaces each frame of ``types`` with ``fn(frame)``; None drops it.

    Frames of other types, and all system frames unless listed in ``types``, pass unchanged.
    """

    def __init__(
        self,
        fn: Mapper,
        *,
        types: tuple[type[Frame], ...] = (Frame,),
        direction: Direction = Direction.DOWNSTREAM,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._fn: Callable[[Frame], Any] = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._types = types
        self._direction = direction
        self._explicit_system = any(t.kind is FrameKind.SYSTEM for t in types if t is not Frame)

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        applies = (
            direction is self._direction
            and isinstance(frame, self._types)
            and (frame.kind is not FrameKind.SYSTEM or self._explicit_system)
        )
        if not applies:
            await self.push(frame, direction)
            return
        result = await _call(self._fn, self._is_async, frame)
        if result is not None:
            await self.push(result, direction)
