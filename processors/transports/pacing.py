"""One clock for every paced stream of an event loop.

Paced audio (an output transport playing the bot, a file input playing the user)
needs a wake-up every 20 ms per stream. With one timer per stream, N sessions cost
N timer wake-ups, N passes of the event loop and N ``epoll`` calls every 20 ms,
which is what limits how many sessions one process carries. A :class:`Pacer`
coalesces them: deadlines are rounded *up* to a grid of ``tick_ms`` (5 ms by
default) and one timer, armed for the earliest occupied slot, releases every
waiter of that slot at once. N streams then cost at most ``20 / tick_ms``
timer wake-ups per 20 ms, whatever N is, and the loop wakes each waiting task
directly (setting its event) instead of through its own timer.

Guarantees, for any waiter:

- it is never released before its deadline, and at most one tick after it
  (plus whatever the event loop itself is late by);
- waiters are released in the order of their slots, and within a slot in the
  order they registered;
- a cancelled wait leaves nothing behind: when no wait is pending the pacer
  holds no timer at all, so a session that ends leaves nothing running.

Each event loop has its own pacer (:func:`current_pacer`), created on first use.
On anyio's asyncio backend its timer is one ``loop.call_later`` handle; on another
backend each wait falls back to a timer of its own (correct, not shared). A shared
pacer, whatever its clock, runs on an asyncio event loop.
Tests may put a pacer on a clock of their own in place with :func:`use_pacer`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = [
    "Clock",
    "LoopClock",
    "Pacer",
    "Ticket",
    "TimerHandle",
    "current_pacer",
    "use_pacer",
]

DEFAULT_TICK_MS = 5.0


class TimerHandle(Protocol):
    """A timer armed on a :class:`Clock`."""

    def cancel(self) -> None:
        """Disarm the timer (no effect once it has fired)."""


class Clock(Protocol):
    """Where a :class:`Pacer` reads the time and arms its one timer."""

    def now_ns(self) -> int:
        """Monotonic time in nanoseconds."""

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` (from the event loop, not a task) once ``now_ns() >= when_ns``."""


class LoopClock:
    """The monotonic clock, with timers on an asyncio event loop."""

    def __init__(self, loop: object) -> None:
        """Arm timers on ``loop`` (an :class:`asyncio.AbstractEventLoop`)."""
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"LoopClock needs an asyncio event loop, not {type(loop).__name__}")
        self._loop = loop

    @staticmethod
    def now_ns() -> int:
        """:func:`time.monotonic_ns`."""
        return time.monotonic_ns()

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Arm a loop timer; the delay is taken from the monotonic clock, whatever the
        loop's own time base is."""
        delay = max(0, when_ns - time.monotonic_ns()) / 1e9
        return self._loop.call_later(delay, callback)


class Ticket:
    """One pending release: ``callback`` runs when the pacer reaches its slot."""

    __slots__ = ("_pacer", "callback", "slot")

    def __init__(self, pacer: Pacer, slot: int, callback: Callable[[], None]) -> None:
        self._pacer: Pacer | None = pacer
        self.slot = slot
        self.callback = callback

    @property
    def pending(self) -> bool:
        """True until the ticket is released or cancelled."""
        return self._pacer is not None

    def cancel(self) -> None:
        """Withdraw the ticket (no effect once released)."""
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer._withdraw(self)


class Pacer:
    """Releases waiters on a shared grid of ``tick_ms`` with one timer per event loop.

    ``clock`` None makes an unshared pacer: every wait sleeps on a timer of its own
    (the fallback on event loops the shared timer does not support).
    """

    def __init__(self, clock: Clock | None, tick_ms: float = DEFAULT_TICK_MS) -> None:
        """Pace on ``clock`` with slots ``tick_ms`` apart."""
        if not tick_ms > 0:
            raise ValueError(f"tick_ms must be positive, got {tick_ms!r}")
        self.clock = clock
        self.tick_ns = max(1, round(tick_ms * 1e6))
        self._slots: dict[int, list[Ticket]] = {}
        self._live: dict[int, int] = {}  # slot -> tickets still pending in it
        self._heap: list[int] = []
        self._timer: TimerHandle | None = None
        self._armed: int | None = None  # the slot the timer is armed for
        self._firing = False  # in _fire: it re-arms once at its end
        self.wakeups = 0
        """Timer wake-ups so far (one per occupied slot reached)."""
        self.released = 0
        """Tickets released so far."""

    @property
    def shared(self) -> bool:
        """True when waits share this pacer's timer."""
        return self.clock is not None

    @property
    def pending(self) -> int:
        """Tickets waiting for their slot."""
        return sum(self._live.values())

    @property
    def armed(self) -> bool:
        """True while the pacer holds a timer (only while some ticket is pending)."""
        return self._timer is not None

    def now_ns(self) -> int:
        """The pacer's clock (:func:`time.monotonic_ns` when unshared)."""
        return self.clock.now_ns() if self.clock is not None else time.monotonic_ns()

    def release_ns(self, when_ns: int) -> int:
        """When a wait for ``when_ns`` is released: ``when_ns`` rounded up to the grid."""
        return -(-when_ns // self.tick_ns) * self.tick_ns

    # ------------------------------------------------------------------ tickets

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> Ticket:
        """Run ``callback`` (quick, must not raise) at ``when_ns``'s slot, from the loop.

        Needs a shared pacer. The callback runs even if the slot has already passed,
        at the next timer wake-up.
        """
        if self.clock is None:
            raise RuntimeError("an unshared pacer has no timer; use sleep_until or wait")
        ticket = Ticket(self, -(-when_ns // self.tick_ns), callback)
        self._queue(ticket)
        return ticket

    def call_again(self, ticket: Ticket, when_ns: int) -> None:
        """Queue a released ``ticket`` of this pacer once more, for ``when_ns``'s slot.

        For a stream that takes a ticket per chunk: reusing one keeps the steady
        state free of new objects, so the garbage collector has nothing to do.
        """
        if ticket._pacer is not None:
            raise RuntimeError("the ticket is still pending; cancel it or wait for its release")
        ticket._pacer = self
        ticket.slot = -(-when_ns // self.tick_ns)
        self._queue(ticket)

    def _queue(self, ticket: Ticket) -> None:
        slot = ticket.slot
        bucket = self._slots.get(slot)
        if bucket is None:
            self._slots[slot] = [ticket]
            self._live[slot] = 1
            heapq.heappush(self._heap, slot)
        else:
            bucket.append(ticket)
            self._live[slot] += 1
        if not self._firing and (self._armed is None or slot < self._armed):
            self._arm(slot)

    def _arm(self, slot: int) -> None:
        assert self.clock is not None
        if self._timer is not None:
            self._timer.cancel()
        self._armed = slot
        self._timer = self.clock.call_at(slot * self.tick_ns, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed = None

    def _withdraw(self, ticket: Ticket) -> None:
        slot = ticket.slot
        left = self._live[slot] - 1
        if left:
            self._live[slot] = left
            return
        del self._live[slot], self._slots[slot]  # the heap entry is skipped later
        if slot == self._armed:
            self._arm_next()

    def _arm_next(self) -> None:
        heap = self._heap
        while heap and heap[0] not in self._slots:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0])
        else:
            self._disarm()

    def _fire(self) -> None:
        """The timer: release every slot reached, oldest first, then re-arm."""
        assert self.clock is not None
        armed = self._armed
        self._timer = self._armed = None
        self.wakeups += 1
        limit = self.clock.now_ns() // self.tick_ns
        if armed is not None:
            limit = max(limit, armed)  # a timer may fire a hair early in float time
        heap = self._heap
        # A callback may take a new ticket (a paced output taking its next chunk's):
        # it is queued without arming the timer, which is armed once below. One whose
        # slot is reached already is released in this same pass.
        self._firing = True
        try:
            while heap and heap[0] <= limit:
                slot = heapq.heappop(heap)
                bucket = self._slots.pop(slot, None)
                if bucket is None:
                    continue
                del self._live[slot]
                for ticket in bucket:
                    if ticket._pacer is not None:
                        ticket._pacer = None
                        self.released += 1
                        ticket.callback()
        finally:
            self._firing = False
        self._arm_next()

    # ------------------------------------------------------------------- waiting

    async def sleep_until(self, when_ns: int) -> None:
        """Sleep until ``when_ns``'s slot (return at once, without yielding, if it has passed)."""
        now = self.now_ns()
        if when_ns <= now:
            return
        if self.clock is None:
            await anyio.sleep((when_ns - now) / 1e9)
            return
        # A bare future is the cheapest thing a task can wait on (an anyio Event
        # costs a backend look-up each); anyio cancels the task, and so the future,
        # as usual.
        future = asyncio.get_running_loop().create_future()
        ticket = self.call_at(when_ns, partial(_resolve, future))
        try:
            await future
        finally:
            ticket.cancel()

    async def wait(self, event: anyio.Event, until_ns: int) -> bool:
        """Wait until ``event`` is set or ``until_ns``'s slot; True if ``event`` is set."""
        if event.is_set():
            return True
        now = self.now_ns()
        if until_ns <= now:
            return False
        if self.clock is None:
            with anyio.move_on_after((until_ns - now) / 1e9):
                await event.wait()
            return event.is_set()
        ticket = self.call_at(until_ns, event.set)
        try:
            await event.wait()
        finally:
            released = not ticket.pending
            ticket.cancel()
        return not released


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile
        future.set_result(None)


_current: anyio.lowlevel.RunVar[Pacer] = anyio.lowlevel.RunVar("parley_pacer")


def _new_pacer() -> Pacer:
    import sniffio

    if sniffio.current_async_library() == "asyncio":
        return Pacer(LoopClock(asyncio.get_running_loop()))
    return Pacer(None)


def current_pacer() -> Pacer:
    """This event loop's pacer, created on first use."""
    try:
        return _current.get()
    except LookupError:
        pacer = _new_pacer()
        _current.set(pacer)
        return pacer


@contextmanager
def use_pacer(pacer: Pacer) -> Iterator[Pacer]:
    """Within the block, ``pacer`` is this event loop's pacer for what starts pacing
    (a test's manual clock, say); the previous one is back afterwards."""
    token = _current.set(pacer)
    try:
        yield pacer
    finally:
        _current.reset(token)
