"""The shared pacer, on a manual clock: ordering, coalescing, cleanup, and the output
transport's promises (barge-in within a chunk, re-anchoring after a stall) on it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import sys
from collections.abc import Callable

import anyio
import pytest

from framework import Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import BotStoppedSpeakingFrame, InterruptionFrame, TTSTextFrame
from processors.transports import OutputTransport
from processors.transports.pacing import Pacer, Ticket, current_pacer, use_pacer

from .transport_helpers import Tap, tone_frames

pytestmark = pytest.mark.anyio

MS = 1_000_000
T0 = 1_000_000 * MS  # the manual clock's start: a multiple of every tick used here


class _Timer:
    def __init__(self, clock: ManualClock, when_ns: int, callback: Callable[[], None]) -> None:
        self.clock, self.when_ns, self.callback = clock, when_ns, callback
        self.live = True

    def cancel(self) -> None:
        if self.live:
            self.live = False
            self.clock.live -= 1


class ManualClock:
    """A clock that moves only when told; its timers fire as it passes them."""

    def __init__(self, start_ns: int = T0) -> None:
        self.now = start_ns
        self.timers: list[tuple[int, int, _Timer]] = []
        self.armed = 0  # timers ever armed
        self.fired = 0
        self.live = 0  # timers armed and neither fired nor cancelled
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self.now

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, when_ns, callback)
        heapq.heappush(self.timers, (when_ns, next(self._seq), timer))
        self.armed += 1
        self.live += 1
        return timer

    def jump(self, ns: int) -> None:
        """Move ``ns`` on at once, then fire the timers passed (late, as after a stall)."""
        self.now += ns
        while self.timers and self.timers[0][0] <= self.now:
            _, _, timer = heapq.heappop(self.timers)
            if timer.live:
                timer.live = False
                self.live -= 1
                self.fired += 1
                timer.callback()

    async def run(self, ns: int, step_ns: int = MS) -> None:
        """Move ``ns`` on in steps, letting every task run between steps."""
        await anyio.wait_all_tasks_blocked()
        for _ in range(ns // step_ns):
            self.jump(step_ns)
            await anyio.wait_all_tasks_blocked()


async def test_waiters_wake_in_deadline_order_never_early_and_within_a_tick() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    rng = random.Random(7)
    deadlines = [T0 + rng.randrange(1, 60) * MS + rng.randrange(MS) for _ in range(40)]
    woke: list[tuple[int, int]] = []  # (index, clock time)

    async def sleeper(index: int) -> None:
        await pacer.sleep_until(deadlines[index])
        woke.append((index, clock.now))

    async with anyio.create_task_group() as tg:
        for index in range(len(deadlines)):
            tg.start_soon(sleeper, index)
        await clock.run(70 * MS)

    assert len(woke) == len(deadlines)
    for index, at in woke:
        assert deadlines[index] <= at < deadlines[index] + 5 * MS
        assert at == pacer.release_ns(deadlines[index])
    slots = [pacer.release_ns(deadlines[i]) for i, _ in woke]
    assert slots == sorted(slots)
    # Within a slot, in the order they started waiting.
    for slot in set(slots):
        members = [i for i, _ in woke if pacer.release_ns(deadlines[i]) == slot]
        assert members == sorted(members)
    assert not pacer.armed and pacer.pending == 0 and clock.live == 0


async def test_many_streams_cost_one_wakeup_per_tick() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    streams, periods = 500, 10
    written = 0

    async def stream(index: int) -> None:
        nonlocal written
        due = T0 + index * 20 * MS // streams  # phases spread over the 20 ms period
        for _ in range(periods):
            await pacer.sleep_until(due)
            written += 1
            due += 20 * MS

    async with anyio.create_task_group() as tg:
        for index in range(streams):
            tg.start_soon(stream, index)
        await clock.run((periods + 1) * 20 * MS)

    assert written == streams * periods
    # 4 slots per 20 ms period whatever the number of streams (a timer per stream
    # would be 5,000 wake-ups).
    assert pacer.wakeups <= periods * 4 + 1
    assert clock.fired == pacer.wakeups
    assert pacer.released == written - 1  # stream 0's first deadline is now: no wait
    assert not pacer.armed and clock.live == 0


def test_tickets_taken_by_released_callbacks_share_the_one_timer() -> None:
    """Chained tickets (a tick taking the next chunk's) arm no timer of their own while
    the pacer fires; one whose slot is reached already goes out in the same pass."""
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    released: list[tuple[str, int]] = []

    def chain(name: str, left: int) -> None:
        released.append((name, clock.now))
        if left:
            pacer.call_at(clock.now + 20 * MS, lambda: chain(name, left - 1))
        if name == "a" and left == 2:  # a slot already reached: released in this pass
            pacer.call_at(clock.now - 3 * MS, lambda: released.append(("late", clock.now)))

    for index, name in enumerate("abcd"):
        pacer.call_at(T0 + 20 * MS + index * MS, lambda name=name: chain(name, 3))  # type: ignore[misc]
    clock.jump(200 * MS // 2)  # a stall: everything up to now goes out in one pass
    for _ in range(100):
        clock.jump(MS)
    assert [n for n, _ in released].count("late") == 1
    assert sorted(n for n, _ in released if n != "late") == sorted("abcd" * 4)
    for name in "abcd":  # each chain in order, 20 ms apart once caught up
        times = [t for n, t in released if n == name]
        assert times == sorted(times)
    # One timer wake-up per occupied slot reached, not one per ticket taken.
    assert clock.fired == pacer.wakeups < pacer.released
    assert clock.armed <= pacer.wakeups + 1  # the first arming, then one per wake-up
    assert not pacer.armed and clock.live == 0 and pacer.pending == 0


async def test_a_cancelled_wait_leaves_no_ticket_and_no_timer() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    async with anyio.create_task_group() as tg:
        for k in range(20):
            tg.start_soon(pacer.sleep_until, T0 + (k + 1) * 7 * MS)
        await anyio.wait_all_tasks_blocked()
        assert pacer.pending == 20 and pacer.armed and clock.live == 1
        tg.cancel_scope.cancel()
    assert pacer.pending == 0
    assert not pacer.armed and clock.live == 0


async def test_withdrawing_the_earliest_slot_rearms_for_the_next() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    fired: list[str] = []
    early = pacer.call_at(T0 + 3 * MS, lambda: fired.append("early"))
    pacer.call_at(T0 + 12 * MS, lambda: fired.append("late"))
    early.cancel()
    assert not early.pending
    clock.jump(5 * MS)
    assert fired == [] and clock.fired == 0  # the timer for the withdrawn slot was disarmed
    clock.jump(10 * MS)
    assert fired == ["late"] and clock.fired == 1 and not pacer.armed


async def test_wait_returns_early_when_its_event_is_set() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    results: list[tuple[bool, int]] = []
    arrival = anyio.Event()

    async def waiter(event: anyio.Event, until: int) -> None:
        results.append((await pacer.wait(event, until), clock.now))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, arrival, T0 + 50 * MS)
        tg.start_soon(waiter, anyio.Event(), T0 + 20 * MS)
        await clock.run(10 * MS)
        arrival.set()
        await clock.run(20 * MS)
    assert results == [(True, T0 + 10 * MS), (False, T0 + 20 * MS)]
    assert pacer.pending == 0 and not pacer.armed


def test_a_tick_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick_ms must be positive"):
        Pacer(ManualClock(), tick_ms=0)


async def test_each_event_loop_has_one_pacer_on_the_loop_clock() -> None:
    pacer = current_pacer()
    assert pacer is current_pacer() and pacer.shared
    manual = Pacer(ManualClock())
    with use_pacer(manual):
        assert current_pacer() is manual
    assert current_pacer() is pacer
    before = pacer.wakeups
    for _ in range(3):
        await pacer.sleep_until(pacer.now_ns() + 2 * MS)
    assert pacer.wakeups >= before + 3 and not pacer.armed


# ------------------------------------------------------ the output transport on it


def test_a_released_ticket_taken_again_runs_again_and_a_pending_one_is_refused() -> None:
    """``call_again`` re-queues a released ticket (a stream's one ticket per chunk):
    it runs at its new slot, can be withdrawn, and a pending ticket cannot be re-queued."""
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    runs: list[int] = []
    ticket = pacer.call_at(T0 + 20 * MS, lambda: runs.append(clock.now))
    with pytest.raises(RuntimeError, match="still pending"):
        pacer.call_again(ticket, T0 + 40 * MS)
    clock.jump(20 * MS)
    assert runs == [T0 + 20 * MS] and not ticket.pending
    pacer.call_again(ticket, T0 + 38 * MS)  # rounded up to the 40 ms slot
    assert ticket.pending and pacer.pending == 1 and pacer.armed
    clock.jump(17 * MS)
    assert runs == [T0 + 20 * MS]
    clock.jump(3 * MS)
    assert runs == [T0 + 20 * MS, T0 + 40 * MS]
    pacer.call_again(ticket, T0 + 60 * MS)
    ticket.cancel()
    clock.jump(40 * MS)
    assert len(runs) == 2 and pacer.pending == 0 and not pacer.armed and clock.live == 0


class _CountingPacer(Pacer):
    """Counts the tickets it makes (``call_at``), not those taken again."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock, tick_ms=5)
        self.tickets_made = 0

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> Ticket:
        self.tickets_made += 1
        return super().call_at(when_ns, callback)


class _Sink(OutputTransport):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(OutputTransport.Params(stop_delay_ms=20), name="sink")
        self.clock = clock
        self.writes: list[tuple[int, int]] = []  # (clock time, play_ns)

    async def write_chunk(self, pcm: bytes, play_ns: int) -> None:
        self.writes.append((self.clock.now, play_ns))


class _DirectSink(_Sink):
    """Writes with ``write_chunk_now``: chunks after a stretch's first come from the tick."""

    write_chunk = OutputTransport.write_chunk  # type: ignore[assignment]

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.from_worker = 0  # writes made by the output's own task

    def write_chunk_now(self, pcm: bytes, play_ns: int) -> None:
        task = asyncio.current_task()
        self.from_worker += task is not None and task.get_name() == f"{self.name}.worker"
        self.writes.append((self.clock.now, play_ns))


@pytest.fixture(autouse=True, params=["awaited write", "write from the tick"])
def sink_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every output test runs with both kinds of output (``_Sink`` is looked up late)."""
    if request.param == "write from the tick":
        monkeypatch.setattr(sys.modules[__name__], "_Sink", _DirectSink)
    return str(request.param)


async def _session(
    pacer: Pacer, clock: ManualClock, drive: Callable[[PipelineTask, _Sink, Tap], object]
) -> tuple[_Sink, Tap]:
    sink, tap = _Sink(clock), Tap()
    task = PipelineTask(Pipeline([Processor(), sink, tap]), TaskParams())
    with use_pacer(pacer), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(task.run)
            await drive(task, sink, tap)  # type: ignore[misc]
            await task.stop_when_done()
            for _ in range(200):  # the End frame waits for the audio to play out
                if task.end_reason is not None:
                    break
                await clock.run(5 * MS)
    return sink, tap


async def test_output_chunks_play_on_schedule_and_the_session_leaves_no_timer() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)

    async def drive(task: PipelineTask, sink: _Sink, tap: Tap) -> None:
        await task.queue_frames(tone_frames(0.2))
        await clock.run(300 * MS)

    sink, tap = await _session(pacer, clock, drive)
    assert len(sink.writes) == 10
    first_play = sink.writes[0][1]
    assert [p - first_play for _, p in sink.writes] == [k * 20 * MS for k in range(10)]
    for written, play in sink.writes:
        assert play <= written < play + 5 * MS  # never early, at most a tick late
    (stop,) = tap.frames(BotStoppedSpeakingFrame)
    assert not stop.interrupted and stop.played_s == pytest.approx(0.2)
    assert pacer.pending == 0 and not pacer.armed and clock.live == 0
    if isinstance(sink, _DirectSink):  # the task wrote the first chunk, the tick the rest
        assert sink.from_worker <= 2, sink.from_worker


async def test_a_piece_written_from_the_tick_takes_one_ticket_for_all_its_chunks() -> None:
    """Steady playback makes no new object per chunk: the batch's one ticket is taken
    again for each (the awaited write sleeps on a ticket per chunk)."""
    clock = ManualClock()
    pacer = _CountingPacer(clock)

    async def drive(task: PipelineTask, sink: _Sink, tap: Tap) -> None:
        await task.queue_frames(tone_frames(0.4, frame_ms=400))  # one piece, 20 chunks
        await clock.run(500 * MS)

    sink, _ = await _session(pacer, clock, drive)
    assert len(sink.writes) == 20
    if isinstance(sink, _DirectSink):
        assert pacer.tickets_made <= 4, pacer.tickets_made
    else:
        assert pacer.tickets_made >= 19, pacer.tickets_made
    assert pacer.pending == 0 and not pacer.armed and clock.live == 0


async def test_barge_in_stops_within_one_chunk_and_keeps_the_words_heard() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    cut_at: list[int] = []

    async def drive(task: PipelineTask, sink: _Sink, tap: Tap) -> None:
        await task.queue_frames([TTSTextFrame(text="one two three four"), *tone_frames(0.4)])
        await clock.run(207 * MS)  # half-way through the reply, inside a chunk
        cut_at.append(clock.now)
        await task.queue_frame(InterruptionFrame())
        await clock.run(200 * MS)

    sink, tap = await _session(pacer, clock, drive)
    cut = cut_at[0]
    after = [w for w, _ in sink.writes if w > cut]
    assert after == []
    last_play = sink.writes[-1][1]
    assert cut - 20 * MS <= last_play <= cut  # the chunk playing at the cut was the last
    assert last_play + 20 * MS - cut <= 20 * MS  # audio out after the cut: within one chunk
    stop = tap.frames(BotStoppedSpeakingFrame)[0]
    assert stop.interrupted
    assert stop.played_s == pytest.approx((cut - sink.writes[0][1]) / 1e9, abs=0.021)
    assert [f.text for f in tap.frames(TTSTextFrame)] == ["one two"]


async def test_after_a_stall_the_schedule_is_reanchored_not_burst() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    stall_end: list[int] = []

    async def drive(task: PipelineTask, sink: _Sink, tap: Tap) -> None:
        await task.queue_frames(tone_frames(0.4))
        await clock.run(70 * MS)
        clock.jump(250 * MS)  # the event loop stalls for a quarter of a second
        stall_end.append(clock.now)
        await clock.run(400 * MS)

    sink, _ = await _session(pacer, clock, drive)
    assert len(sink.writes) == 20  # nothing lost
    times = [w for w, _ in sink.writes]
    first = times.index(stall_end[0])
    assert times.count(stall_end[0]) == 1  # one chunk at the end of the stall, no burst
    assert sink.writes[first][1] == stall_end[0]  # re-anchored to the end of the stall
    gaps = [b - a for a, b in itertools.pairwise(times[first:])]
    assert all(20 * MS <= g < 25 * MS for g in gaps), gaps


async def test_many_outputs_share_one_wakeup_per_tick() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    sinks = [_Sink(clock) for _ in range(40)]
    tasks = [PipelineTask(Pipeline([Processor(), s]), TaskParams()) for s in sinks]
    with use_pacer(pacer), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(task.run)
            await anyio.wait_all_tasks_blocked()
            for index, task in enumerate(tasks):
                await task.queue_frames(tone_frames(0.2))
                await clock.run(MS // 2 if index % 2 else MS, step_ns=MS // 2)  # spread phases
            await clock.run(300 * MS)
            for task in tasks:
                await task.stop_when_done()
            await clock.run(100 * MS)
    assert all(len(s.writes) == 10 for s in sinks)
    # 400 chunks over ~0.3 s of clock: one timer wake-up per 5 ms slot at most,
    # instead of one per chunk.
    assert pacer.wakeups <= 400 // 5 + 2 < 360
    assert pacer.pending == 0 and not pacer.armed and clock.live == 0


async def test_a_cancelled_session_leaves_no_timer() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, tick_ms=5)
    sink = _Sink(clock)
    task = PipelineTask(Pipeline([Processor(), sink]), TaskParams())
    with use_pacer(pacer), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(task.run)
            await anyio.wait_all_tasks_blocked()
            await task.queue_frames(tone_frames(1.0))
            await clock.run(100 * MS)
            assert pacer.armed
            await task.cancel()
            await anyio.wait_all_tasks_blocked()
    assert 4 <= len(sink.writes) <= 7
    assert pacer.pending == 0 and not pacer.armed and clock.live == 0


async def test_an_unshared_pacer_sleeps_on_its_own_timer() -> None:
    pacer = Pacer(None)
    assert not pacer.shared
    deadline = pacer.now_ns() + 10 * MS
    await pacer.sleep_until(deadline)
    assert pacer.now_ns() >= deadline
    assert await pacer.wait(anyio.Event(), pacer.now_ns() + 5 * MS) is False
    event = anyio.Event()
    event.set()
    assert await pacer.wait(event, pacer.now_ns() + 5 * MS) is True
    with pytest.raises(RuntimeError, match="no timer"):
        pacer.call_at(deadline, lambda: None)
