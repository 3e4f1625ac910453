"""Scenario b: maximum throughput of data frames through N passthrough stages.

All frames are queued back to back with ``task.queue_frame``, then the task is
asked to stop (an End frame queued behind them); the rate is frames divided by
the time from the first ``queue_frame`` to the End frame reaching the sink.
The baselines get the same frames and an end marker. Frames per CPU second
are recorded too (less disturbed by other processes on a shared machine).
"""

from __future__ import annotations

import statistics
from time import perf_counter_ns, process_time_ns
from typing import Any

import anyio

from benchmarks.overhead.baseline import IMPLS, BareChain
from benchmarks.overhead.common import Profile, build_rig, frame_factory, rate_summary

__all__ = ["run_throughput"]


async def _parley_once(stages: int, count: int) -> tuple[float, float, int]:
    """Frames per second (wall and CPU) through a fresh task, and the frames delivered."""
    make = frame_factory("data")
    frames = [make() for _ in range(count)]
    rig = build_rig(stages)
    async with anyio.create_task_group() as tg:
        await rig.start(tg)
        cpu_start = process_time_ns()
        start = perf_counter_ns()
        for frame in frames:
            await rig.task.queue_frame(frame)
        await rig.task.stop_when_done()
    cpu_s = (process_time_ns() - cpu_start) / 1e9
    return count / ((rig.sink.end_ns - start) / 1e9), count / cpu_s, rig.sink.audio_count


async def _bare_once(stages: int, count: int, impl: Any) -> tuple[float, float, int]:
    make = frame_factory("data")
    frames = [make() for _ in range(count)]
    chain = BareChain(stages, impl)
    async with anyio.create_task_group() as tg:
        await chain.start(tg)
        cpu_start = process_time_ns()
        start = perf_counter_ns()
        for frame in frames:
            await chain.push(frame)
        await chain.end()
        cpu_s = (process_time_ns() - cpu_start) / 1e9
        tg.cancel_scope.cancel()
    return count / ((chain.end_ns - start) / 1e9), count / cpu_s, chain.audio_count


async def run_throughput(profile: Profile) -> dict[str, Any]:
    """Scenario b; frames/s for Parley and both baselines (median of the repeats).

    A flavour too slow to pass all the frames within the profile's time budget
    gets fewer (never under 2,000); the count used is recorded.
    """
    stages, count = profile.throughput_stages, profile.throughput_frames
    result: dict[str, Any] = {
        "config": {
            "stages": stages,
            "frames": count,
            "repeats": profile.throughput_repeats,
            "budget_s": profile.throughput_budget_s,
            "frame_kind": "data (OutputAudioFrame)",
        },
        "frames_per_s": {},
        "frames_per_cpu_s": {},
        "frames_used": {},
        "frames_delivered": {},
    }
    for impl in ("parley", *IMPLS):

        async def once(frames: int, impl: Any = impl) -> tuple[float, float, int]:
            if impl == "parley":
                return await _parley_once(stages, frames)
            return await _bare_once(stages, frames, impl)

        warm_rate, _, _ = await once(min(count, 2_000))
        used = min(count, max(2_000, int(warm_rate * profile.throughput_budget_s)))
        runs = [await once(used) for _ in range(profile.throughput_repeats)]
        result["frames_per_s"][impl] = rate_summary([rate for rate, _, _ in runs])
        result["frames_per_cpu_s"][impl] = statistics.median(cpu for _, cpu, _ in runs)
        result["frames_used"][impl] = used
        result["frames_delivered"][impl] = min(delivered for _, _, delivered in runs)
    return result
