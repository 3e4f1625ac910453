"""The loading gate of a stage whose model loads in a worker thread at start.

Speech-to-text, the LLM and text-to-speech all load their model when the
pipeline starts, in a worker thread so the event loop keeps running, and their
frames can arrive before the load is done. :class:`ModelGate` is that one
mechanism: the stage arms it when it is set up, loads through it on
``StartFrame``, and waits on it before using the model.

A load that fails is reported once, as an error frame naming the stage and
what it was loading; whether that error is fatal is the stage's choice
(``fatal``). Afterwards :attr:`ModelGate.error` says why the model is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from framework.processor import Processor

__all__ = ["ModelGate"]

T = TypeVar("T")


class ModelGate:
    """Readiness of one stage's model; see the module docstring.

    ``what`` names the thing loaded in the error ("model", "voice"); ``fatal``
    makes a failed load end the task.
    """

    def __init__(self, stage: Processor, what: str = "model", *, fatal: bool = False) -> None:
        """Gate ``stage``'s model; call :meth:`arm` in the stage's ``setup``."""
        self._stage = stage
        self._what = what
        self._fatal = fatal
        self._event: anyio.Event | None = None
        self.error: BaseException | None = None
        """Why the load failed (None while loading or once loaded)."""
        self.ready_ns = 0
        """``time.monotonic_ns()`` when the load ended (0 before)."""

    def arm(self) -> None:
        """Close the gate: waiters block until :meth:`load` ends. Call in ``setup``."""
        self._event = anyio.Event()

    async def load(self, fn: Callable[[], T]) -> T | None:
        """Run blocking ``fn`` in a worker thread, then open the gate.

        Returns what ``fn`` returns, or None when it raised: the failure is kept
        in :attr:`error` and pushed upstream as an error frame naming the stage.
        The Start frame goes on either way.
        """
        try:
            return await anyio.to_thread.run_sync(fn)
        except Exception as exc:
            self.error = exc
            await self._stage.push_error(
                f"{self._stage.name} could not load its {self._what}: {type(exc).__name__}: {exc}",
                exception=exc,
                fatal=self._fatal,
            )
            return None
        finally:
            self.ready_ns = time.monotonic_ns()
            if self._event is not None:
                self._event.set()

    async def wait(self) -> BaseException | None:
        """Wait until the load has ended; return its error (None: the model is there)."""
        if self._event is not None:
            await self._event.wait()
        return self.error

    def reason(self) -> str:
        """`` (the load error)`` for a message about the missing model, or ``""``."""
        return f" ({self.error})" if self.error is not None else ""
