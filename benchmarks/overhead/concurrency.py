"""Scenario d: K concurrent sessions, each fed one 20 ms frame every 20 ms.

Each K runs in a fresh interpreter (``python -m benchmarks.overhead --child
concurrency ...``) so that its peak RSS is its own. The child starts K tasks of
N passthrough stages, then one feeder per task that sleeps until its next 20 ms
deadline on an absolute schedule (phases spread evenly over the period, as
sessions start at random times) and queues one frame. It reports the CPU used
(process time over wall time, in % of one core), the push-to-sink latency, how
late the feeders woke, and whether the run kept up with real time: every
frame delivered, 99 % of them fed less than one period (20 ms) late, and no
feeder still a period behind at the end (a stall it caught up on is fine).

Variants: ``system`` feeds InputAudioFrame (what a microphone transport
sends), ``data`` feeds OutputAudioFrame (goes through the task's source queue),
``feeders`` only wakes and makes the frame, without a pipeline: the floor
the event loop itself costs with a timer per session; ``pacer`` is the same with
every feeder waiting on the event loop's shared pacer instead. ``output``
(:mod:`benchmarks.overhead.paced`) plays bot audio through each session's paced
output transport, pacing included.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from time import perf_counter_ns
from typing import Any

import anyio
import anyio.lowlevel

from benchmarks.overhead.common import (
    PERIOD_NS,
    Histogram,
    Profile,
    Rig,
    build_rig,
    current_rss_kib,
    frame_factory,
    peak_rss_kib,
)
from benchmarks.overhead.subprocess_util import run_child
from processors.transports.base import sleep_until_ns

__all__ = ["child_concurrency", "run_concurrency"]

GRACE_S = 5.0  # how long feeders may run past the schedule before the run is cut


async def _feed(
    rig: Rig | None,
    kind: str,
    first_deadline_ns: int,
    frames: int,
    lateness: Histogram,
    fed: list[int],
    lag: list[int],
    index: int,
    shared: bool,
) -> None:
    make = frame_factory(kind)
    deadline = first_deadline_ns
    for _ in range(frames):
        now = perf_counter_ns()
        if deadline > now:
            if shared:  # the pacer keeps monotonic time
                await sleep_until_ns(deadline - now + time.monotonic_ns())
            else:
                await anyio.sleep((deadline - now) / 1e9)
            now = perf_counter_ns()
        else:
            await anyio.lowlevel.checkpoint()  # behind schedule: still let the others run
        lateness.add(now - deadline)
        frame = make()
        if rig is not None:
            await rig.queue(frame)
        fed[index] += 1
        lag[index] = now - deadline
        deadline += PERIOD_NS


async def _session_run(k: int, stages: int, duration_s: float, variant: str) -> dict[str, Any]:
    latency = Histogram(bin_ns=1_000, max_ns=200_000_000)
    lateness = Histogram(bin_ns=100_000, max_ns=20_000_000_000)
    kind = "data" if variant == "data" else "system"
    frames = round(duration_s * 1e9 / PERIOD_NS)
    fed = [0] * k
    lag = [0] * k  # how late each feeder's last frame was
    rss_empty = current_rss_kib()
    async with anyio.create_task_group() as tg:
        running = (
            []
            if variant in ("feeders", "pacer")
            else [
                build_rig(stages, record=latency.add, name=f"session{index}") for index in range(k)
            ]
        )
        for session in running:
            tg.start_soon(session.task.run)
        for session in running:
            await session.sink.started.wait()
        rigs: list[Rig | None] = list(running) if running else [None] * k
        gc.collect()
        rss_ready = current_rss_kib()

        first = perf_counter_ns() + 50_000_000
        await anyio.sleep(0.04)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with anyio.move_on_after(duration_s + GRACE_S + 0.05) as cut:
            async with anyio.create_task_group() as feeders:
                for index, rig in enumerate(rigs):
                    phase = index * PERIOD_NS // k
                    feeders.start_soon(
                        _feed,
                        rig,
                        kind,
                        first + phase,
                        frames,
                        lateness,
                        fed,
                        lag,
                        index,
                        variant == "pacer",
                    )
        wall1, cpu1 = time.perf_counter(), time.process_time()
        with anyio.move_on_after(1.0):  # queued data frames still on their way
            for session, count in zip(running, fed, strict=False):
                await session.sink.expect(count).wait()
        tg.cancel_scope.cancel()

    expected = k * frames
    total_fed = sum(fed)
    bare = variant in ("feeders", "pacer")
    delivered = total_fed if bare else sum(r.sink.audio_count for r in running)
    behind = lateness.count_above(PERIOD_NS)
    late = lateness.summary("ms")
    return {
        "k": k,
        "variant": variant,
        "stages": stages,
        "duration_s": duration_s,
        "wall_s": wall1 - wall0,
        "cpu_s": cpu1 - cpu0,
        "cpu_pct_of_one_core": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "frames_expected": expected,
        "frames_fed": total_fed,
        "frames_delivered": delivered,
        "cut_short": cut.cancelled_caught,
        "latency_us": latency.summary("us"),
        "feeder_lateness_ms": late,
        "frames_fed_over_20ms_late": behind,
        "final_lag_ms": max(lag) / 1e6,
        "kept_up": (
            delivered == expected
            and not cut.cancelled_caught
            and late.get("p99", 0.0) * 1e6 <= PERIOD_NS
            and max(lag) <= PERIOD_NS
        ),
        "rss_empty_kib": rss_empty,
        "rss_ready_kib": rss_ready,
        "peak_rss_kib": peak_rss_kib(),
    }


def child_concurrency(k: int, stages: int, duration_s: float, variant: str) -> int:
    """Entry point of the child process: run one K and print its JSON on stdout."""
    if variant in ("output", "output-pygc"):
        from benchmarks.overhead.paced import run_output_sessions
        from framework.runtime import tune_gc

        if variant == "output":  # as parley serve and parley talk run their sessions
            tune_gc()
        result = anyio.run(run_output_sessions, k, stages, duration_s, variant, backend="asyncio")
    else:
        result = anyio.run(_session_run, k, stages, duration_s, variant, backend="asyncio")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def run_concurrency(profile: Profile, log: Any = None) -> dict[str, Any]:
    """Scenario d; one child process per (variant, K)."""
    runs: dict[str, dict[str, Any]] = {}
    for variant in profile.concurrency_variants:
        runs[variant] = {}
        for k in profile.concurrency_ks:
            if log is not None:
                log(f"  d: {variant} K={k} ({profile.concurrency_duration_s:g} s)")
            args = [
                "concurrency",
                f"--k={k}",
                f"--stages={profile.concurrency_stages}",
                f"--duration={profile.concurrency_duration_s}",
                f"--variant={variant}",
            ]
            runs[variant][str(k)] = run_child(
                args, timeout_s=profile.concurrency_duration_s + GRACE_S + 120
            )
    return {
        "config": {
            "ks": list(profile.concurrency_ks),
            "stages": profile.concurrency_stages,
            "duration_s": profile.concurrency_duration_s,
            "period_ms": PERIOD_NS / 1e6,
            "variants": list(profile.concurrency_variants),
        },
        "runs": runs,
    }
