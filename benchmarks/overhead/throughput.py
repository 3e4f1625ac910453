"""Scenario b: maximum throughput of data frames through N passthrough stages.

All frames are queued back to back with ``task.queue_frame``, then the task is
asked to stop (an End frame queued behind them); the rate is frames divided by
the time from the first ``queue_frame`` to the End frame reaching the sink.
The baselines get the same frames and an end marker.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

import anyio

from benchmarks.overhead.baseline import IMPLS, BareChain
from benchmarks.overhead.common import Profile, build_rig, frame_factory, rate_summary

__all__ = ["run_throughput"]


async def _parley_once(stages: int, count: int) -> tuple[float, int]:
    """Frames per second through a fresh task, and the frames that reached the sink."""
    make = frame_factory("data")
    frames = [make() for _ in range(count)]
    rig = build_rig(stages)
    async with anyio.create_task_group() as tg:
        await rig.start(tg)
        start = perf_counter_ns()
        for frame in frames:
            await rig.task.queue_frame(frame)
        await rig.task.stop_when_done()
    return count / ((rig.sink.end_ns - start) / 1e9), rig.sink.audio_count


async def _bare_once(stages: int, count: int, impl: Any) -> tuple[float, int]:
    make = frame_factory("data")
    frames = [make() for _ in range(count)]
    chain = BareChain(stages, impl)
    async with anyio.create_task_group() as tg:
        await chain.start(tg)
        start = perf_counter_ns()
        for frame in frames:
            await chain.push(frame)
        await chain.end()
        tg.cancel_scope.cancel()
    return count / ((chain.end_ns - start) / 1e9), chain.audio_count


async def run_throughput(profile: Profile) -> dict[str, Any]:
    """Scenario b; frames/s for Parley and both baselines (median of the repeats)."""
    stages, count = profile.throughput_stages, profile.throughput_frames
    result: dict[str, Any] = {
        "config": {
            "stages": stages,
            "frames": count,
            "repeats": profile.throughput_repeats,
            "frame_kind": "data (OutputAudioFrame)",
        },
        "frames_per_s": {},
        "frames_delivered": {},
    }
    await _parley_once(stages, min(count, 2_000))  # warm-up
    runs: list[tuple[float, int]] = [
        await _parley_once(stages, count) for _ in range(profile.throughput_repeats)
    ]
    result["frames_per_s"]["parley"] = rate_summary([rate for rate, _ in runs])
    result["frames_delivered"]["parley"] = min(delivered for _, delivered in runs)
    for impl in IMPLS:
        await _bare_once(stages, min(count, 2_000), impl)
        runs = [await _bare_once(stages, count, impl) for _ in range(profile.throughput_repeats)]
        result["frames_per_s"][impl] = rate_summary([rate for rate, _ in runs])
        result["frames_delivered"][impl] = min(delivered for _, delivered in runs)
    return result
