"""How a stage recovers from a failing backend, and when it gives up.

Each cascade stage counts its backend's failures in a row: a failed turn of
speech-to-text, a failed reply of a language model, a failed piece of speech
synthesis. A failure is reported upstream as a non-fatal
:class:`~framework.frames.lifecycle.ErrorFrame` naming the stage, and the stage
recovers its own way (see docs/errors.md); the task's ``error_policy`` then
decides whether the conversation goes on. A success resets the count. The
failure after ``max_failures_in_a_row`` of them is reported as *fatal*, which
ends the task whatever its policy: a backend that keeps failing ends the
conversation with a clear error instead of leaving the user talking to silence.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from framework.processor import Processor

__all__ = ["FailureCounter", "max_failures_field"]


def max_failures_field(default: int, recovery: str) -> Any:
    """The ``max_failures_in_a_row`` field of a stage's params; ``recovery`` says what it does."""
    return Field(
        default=default,
        ge=0,
        le=100,
        description=f"Failures in a row the stage recovers from ({recovery}), each reported "
        "as a non-fatal error; the next one is a fatal error that ends the task. A success "
        "resets the count; 0 makes the first failure fatal.",
    )


class FailureCounter:
    """Failures in a row of one stage, and the error frames that report them."""

    def __init__(self, owner: Processor, limit: int) -> None:
        """Count for ``owner``, which gives up after ``limit`` failures in a row."""
        self.owner = owner
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    @property
    def exhausted(self) -> bool:
        """True once a failure was reported as fatal: the stage no longer recovers."""
        return self.in_a_row > self.limit

    def succeeded(self) -> None:
        """The backend worked: start counting from zero again."""
        if not self.exhausted:
            self.in_a_row = 0

    async def failed(self, what: str, exc: BaseException | None = None) -> bool:
        """Report a failure (``what`` happened, ``exc`` why); True if the stage may recover.

        The error frame names the stage (its ``processor`` and the start of its
        message). Past the limit it is fatal and says so.
        """
        self.in_a_row += 1
        self.total += 1
        if not self.exhausted:
            await self._report(what, exc, fatal=False)
            return True
        limit = f"{self.in_a_row} failures in a row, max_failures_in_a_row is {self.limit}"
        await self._report(what, exc, fatal=True, note=f" ({limit}: giving up)")
        return False

    async def give_up(self, what: str, exc: BaseException | None = None) -> None:
        """Report a failure the stage cannot recover from (fatal, whatever the count)."""
        self.total += 1
        self.in_a_row = max(self.in_a_row, self.limit) + 1
        await self._report(what, exc, fatal=True)

    async def _report(
        self, what: str, exc: BaseException | None, *, fatal: bool, note: str = ""
    ) -> None:
        message = f"{self.owner.name} {what}"
        if exc is not None:
            message += f": {type(exc).__name__}: {exc}"
        await self.owner.push_error(message + note, exception=exc, fatal=fatal)
