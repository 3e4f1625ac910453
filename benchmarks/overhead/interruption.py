"""Scenario c: an interruption through N passthrough stages and a busy queued stage.

A slow queued stage (20 ms of simulated work per data frame) sits behind N
passthrough stages, with one frame in progress and a backlog waiting in its
queue. An :class:`~framework.frames.InterruptionFrame` is then queued at the
head with ``task.queue_frame`` (a system frame: it passes every queue). We
measure the time until the sink sees it, the time until the stage's in-flight
work is cancelled, and how many of the queued data frames never reached the sink.
The same interruption through the idle pipeline gives the cost without a backlog.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

import anyio

from benchmarks.overhead.common import Profile, Rig, build_rig, frame_factory, summarize_ns
from framework import Direction, Frame, Processor, handles
from framework.frames import AudioFrame, InterruptionFrame, OutputAudioFrame

__all__ = ["SlowStage", "run_interruption"]

WORK_S = 0.020  # simulated work per data frame


class SlowStage(Processor):
    """A queued stage that spends ``work_s`` per output audio frame, counting what happens."""

    def __init__(self, work_s: float = WORK_S) -> None:
        super().__init__(queued=True)
        self.work_s = work_s
        self.arrived = 0
        self.started = 0
        self.completed = 0
        self.cancelled = 0
        self.cancelled_ns = 0
        self.first_started = anyio.Event()

    async def receive(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, AudioFrame):
            self.arrived += 1
        await super().receive(frame, direction)

    @handles(OutputAudioFrame)
    async def _simulate_work(self, frame: OutputAudioFrame, direction: Direction) -> None:
        self.started += 1
        self.first_started.set()
        try:
            await anyio.sleep(self.work_s)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            self.cancelled_ns = perf_counter_ns()
            raise
        self.completed += 1
        await self.push(frame, direction)


async def _interrupt(rig: Rig) -> int:
    """Queue an interruption; nanoseconds until the sink saw it."""
    start = perf_counter_ns()
    await rig.task.queue_frame(InterruptionFrame())
    assert rig.sink.interruption_ns >= start, "the interruption did not reach the sink"
    return rig.sink.interruption_ns - start


async def _busy_round(rig: Rig, slow: SlowStage, backlog: int) -> dict[str, int]:
    """One interruption with one frame in progress and ``backlog`` frames queued."""
    make = frame_factory("data")
    sink = rig.sink
    base = (sink.audio_count, slow.arrived, slow.started, slow.completed, slow.cancelled)
    slow.first_started = anyio.Event()
    total = backlog + 1
    for _ in range(total):
        await rig.task.queue_frame(make())
    await slow.first_started.wait()
    await anyio.sleep(slow.work_s / 4)  # land in the middle of the work
    arrived = slow.arrived - base[1]
    started = slow.started - base[2]
    completed = slow.completed - base[3]
    delivered_before = sink.audio_count - base[0]

    latency_ns = await _interrupt(rig)
    sent_ns = sink.interruption_ns - latency_ns
    await anyio.sleep(slow.work_s * 2 + 0.03)  # anything not dropped would arrive by now
    delivered = sink.audio_count - base[0]
    cancelled = slow.cancelled - base[4]
    return {
        "latency_ns": latency_ns,
        "cancel_ns": slow.cancelled_ns - sent_ns if cancelled else -1,
        "queued_frames": total,
        "backlog_at_interrupt": arrived - started,
        "in_flight_at_interrupt": started - completed,
        "delivered_before_interrupt": delivered_before,
        "expected_dropped": total - completed,
        "delivered": delivered,
        "dropped": total - delivered,
    }


async def run_interruption(profile: Profile) -> dict[str, Any]:
    """Scenario c; interruption latency (p50/p99) and dropped-frame counts."""
    slow = SlowStage()
    rig = build_rig(profile.interruption_stages, extra=[slow])
    rounds: list[dict[str, int]] = []
    idle_ns: list[int] = []
    async with anyio.create_task_group() as tg:
        await rig.start(tg)
        for index in range(10 + max(profile.interruption_repeats, 10)):
            # The idle pipeline, first 10 rounds for warm-up; a pause lets the workers restart.
            await anyio.sleep(0.002)
            latency_ns = await _interrupt(rig)
            if index >= 10:
                idle_ns.append(latency_ns)
        await _busy_round(rig, slow, profile.interruption_backlog)  # warm-up
        for _ in range(profile.interruption_repeats):
            rounds.append(await _busy_round(rig, slow, profile.interruption_backlog))
        tg.cancel_scope.cancel()

    cancels = [r["cancel_ns"] for r in rounds if r["cancel_ns"] >= 0]
    return {
        "config": {
            "stages": profile.interruption_stages,
            "slow_stage_work_ms": WORK_S * 1e3,
            "backlog": profile.interruption_backlog,
            "repeats": profile.interruption_repeats,
        },
        "latency_ms": summarize_ns([r["latency_ns"] for r in rounds], "ms"),
        "idle_latency_ms": summarize_ns(idle_ns, "ms"),
        "inflight_cancel_ms": summarize_ns(cancels, "ms"),
        "dropped": {
            "min": min(r["dropped"] for r in rounds),
            "max": max(r["dropped"] for r in rounds),
            "all_as_expected": all(r["dropped"] == r["expected_dropped"] for r in rounds),
        },
        "rounds": rounds,
    }
