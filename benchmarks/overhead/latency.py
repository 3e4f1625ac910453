"""Scenario a: per-frame latency and per-hop cost through N passthrough stages.

Two measurements per pipeline length N:

* **paced**: one 20 ms frame every 20 ms per variant, the event loop idle in
  between, as in a live call. Latency is the time from the push (stamped just
  before ``task.queue_frame`` or the first stage's ``receive``) to the sink.
  The variants share one 20 ms period, each in its own time slot, so every
  variant still sees exactly one frame per 20 ms.
* **tight**: many frames back to back (fewer for a variant so slow that a
  repeat would exceed the profile's time budget); the cost per frame at the largest N
  minus the cost at the smallest N, divided by the difference in stages, is
  the cleanest per-hop figure (fixed costs such as the task's source queue cancel out).
  CPU time per frame is recorded as well: on a shared machine it is less
  disturbed by other processes than wall time.

Variants: ``queue_frame/system`` and ``queue_frame/data`` enter as an
application does; ``first_stage/*`` call the first processor's ``receive``
directly (hops only); ``asyncio.Queue`` and ``anyio stream`` are the bare baselines.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns, process_time_ns
from typing import Any, Protocol

import anyio

from benchmarks.overhead.baseline import IMPLS, BareChain
from benchmarks.overhead.common import (
    PERIOD_NS,
    Profile,
    Rig,
    build_rig,
    frame_factory,
    rate_summary,
    summarize_ns,
)
from framework import Direction, Frame

__all__ = ["run_latency"]

WARMUP_TICKS = 10
DOWNSTREAM = Direction.DOWNSTREAM


class _Counting(Protocol):
    """What a tight loop needs of a sink: a frame count, an arrival stamp, a goal event."""

    audio_count: int
    last_ns: int

    def expect(self, total: int) -> anyio.Event: ...


@dataclass(slots=True)
class _Variant:
    """One way of pushing frames into one running pipeline, and where its results land."""

    key: str
    kind: str  # frame kind pushed: "system" or "data"
    send: Callable[[], Awaitable[None]]  # stamp and push one fresh frame (paced)
    push: Callable[[Any], Awaitable[None]]  # push one frame unstamped (tight loop)
    sink: _Counting
    latencies: list[int] = field(default_factory=list)


def _rig_variants(rig_q: Rig, rig_e: Rig, kind: str) -> list[_Variant]:
    make = frame_factory(kind)

    async def send_queue() -> None:
        await rig_q.queue(make())

    async def send_enter() -> None:
        await rig_e.enter(make())

    async def push_enter(frame: Frame) -> None:
        await rig_e.head.receive(frame, DOWNSTREAM)

    return [
        _Variant(
            f"queue_frame/{kind}",
            kind,
            send_queue,
            rig_q.task.queue_frame,
            rig_q.sink,
            rig_q.sink.latencies,
        ),
        _Variant(
            f"first_stage/{kind}", kind, send_enter, push_enter, rig_e.sink, rig_e.sink.latencies
        ),
    ]


def _chain_variant(chain: BareChain) -> _Variant:
    make = frame_factory("data")

    async def send() -> None:
        await chain.queue(make())

    return _Variant(chain.impl, "data", send, chain.push, chain, chain.latencies)


async def _sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - perf_counter_ns()
    if delay > 0:
        await anyio.sleep(delay / 1e9)


async def _paced(variants: Sequence[_Variant], ticks: int) -> None:
    slot_ns = PERIOD_NS // len(variants)
    base = perf_counter_ns() + 5_000_000
    for tick in range(WARMUP_TICKS + ticks):
        for index, variant in enumerate(variants):
            await _sleep_until(base + tick * PERIOD_NS + index * slot_ns)
            if tick == WARMUP_TICKS:  # its last warm-up frame arrived long ago
                variant.latencies.clear()
            await variant.send()
    await anyio.sleep(0.05)  # let the last queued frames arrive


async def _tight_once(variant: _Variant, count: int) -> tuple[float, float]:
    """Wall and CPU nanoseconds per frame for ``count`` frames pushed back to back."""
    make = frame_factory(variant.kind)
    frames = [make() for _ in range(count)]
    sink = variant.sink
    arrived = sink.expect(sink.audio_count + count)
    push = variant.push
    cpu_start = process_time_ns()
    start = perf_counter_ns()
    for frame in frames:
        await push(frame)
    await arrived.wait()
    return (sink.last_ns - start) / count, (process_time_ns() - cpu_start) / count


def _slope(xs: Sequence[int], ys: Sequence[float]) -> dict[str, float]:
    """Cost per stage: between the extreme N, and a least-squares fit over all N."""
    lo, hi = xs.index(min(xs)), xs.index(max(xs))
    result = {"min_max": (ys[hi] - ys[lo]) / (xs[hi] - xs[lo])}
    if len(xs) > 2:
        result["fit"] = statistics.linear_regression(xs, ys).slope
    return result


async def _measure_n(n: int, profile: Profile) -> tuple[dict[str, Any], dict[str, Any]]:
    async with anyio.create_task_group() as tg:
        variants: list[_Variant] = []
        for kind in ("system", "data"):
            rig_q, rig_e = build_rig(n), build_rig(n)
            await rig_q.start(tg)
            await rig_e.start(tg)
            variants.extend(_rig_variants(rig_q, rig_e, kind))
        for impl in IMPLS:
            chain = BareChain(n, impl)
            await chain.start(tg)
            variants.append(_chain_variant(chain))

        await _paced(variants, profile.latency_ticks)
        paced = {v.key: summarize_ns(v.latencies, "us") for v in variants}

        tight: dict[str, Any] = {}
        for variant in variants:
            warm_ns, _ = await _tight_once(variant, min(profile.tight_frames, 500))
            count = min(profile.tight_frames, max(200, int(profile.tight_budget_s * 1e9 / warm_ns)))
            runs = [await _tight_once(variant, count) for _ in range(profile.tight_repeats)]
            tight[variant.key] = {
                **rate_summary([wall for wall, _ in runs]),
                "cpu_median": statistics.median(cpu for _, cpu in runs),
                "frames": count,
            }
        tg.cancel_scope.cancel()
    return paced, tight


async def run_latency(profile: Profile) -> dict[str, Any]:
    """Scenario a; returns paced latency summaries and per-hop costs, by N and variant."""
    paced: dict[str, Any] = {}
    tight: dict[str, Any] = {}
    for n in profile.latency_ns:
        paced[str(n)], tight[str(n)] = await _measure_n(n, profile)

    ns = list(profile.latency_ns)
    keys = list(paced[str(ns[0])])
    paced_per_hop: dict[str, Any] = {}
    tight_per_hop: dict[str, Any] = {}
    for key in keys:
        p50s = [paced[str(n)][key]["p50"] for n in ns]
        paced_per_hop[key] = {
            "p50_over_n_us": {str(n): p / n for n, p in zip(ns, p50s, strict=True)},
            "slope_us": _slope(ns, p50s),
        }
        medians = [tight[str(n)][key]["median"] / 1e3 for n in ns]
        cpu_medians = [tight[str(n)][key]["cpu_median"] / 1e3 for n in ns]
        tight_per_hop[key] = {
            "slope_us": _slope(ns, medians),
            "cpu_slope_us": _slope(ns, cpu_medians),
        }
    return {
        "config": {
            "stages": ns,
            "paced_frames_per_variant": profile.latency_ticks,
            "period_ms": PERIOD_NS / 1e6,
            "tight_frames_max": profile.tight_frames,
            "tight_budget_s": profile.tight_budget_s,
            "tight_repeats": profile.tight_repeats,
            "frame_bytes": 640,
        },
        "paced_latency_us": paced,
        "paced_per_hop_us": paced_per_hop,
        "tight_ns_per_frame": tight,
        "tight_per_hop_us": tight_per_hop,
    }
