"""Shared pieces of the overhead benchmark: profiles, statistics, the test rig.

The rig is a :class:`~framework.task.PipelineTask` running ``N`` passthrough
stages followed by a :class:`StampSink`, the stand-in for an output transport:
it stamps every audio frame with :func:`time.perf_counter_ns` the moment it is
handed over and consumes it; every other frame (Start, End, interruptions) is
recorded and passed on so the task's lifecycle works as usual.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import anyio
from anyio.abc import TaskGroup

from benchmarks.overhead.goal import CountGoal
from framework import Direction, Frame, Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import (
    AudioFrame,
    EndFrame,
    InputAudioFrame,
    InterruptionFrame,
    OutputAudioFrame,
    StartFrame,
)

__all__ = [
    "AUDIO",
    "FRAME_KINDS",
    "PERIOD_NS",
    "PROFILES",
    "SAMPLE_RATE",
    "Histogram",
    "Passthrough",
    "Profile",
    "Rig",
    "StampSink",
    "build_rig",
    "current_rss_kib",
    "fmt",
    "frame_factory",
    "peak_rss_kib",
    "percentile",
    "rate_summary",
    "summarize_ns",
]

SAMPLE_RATE = 16_000
PERIOD_NS = 20_000_000  # one 20 ms audio frame
AUDIO = bytes(SAMPLE_RATE * 2 * 20 // 1000)  # 640 bytes: 20 ms of 16 kHz mono PCM16
DOWNSTREAM = Direction.DOWNSTREAM

FRAME_KINDS: dict[str, type[InputAudioFrame] | type[OutputAudioFrame]] = {
    "system": InputAudioFrame,
    "data": OutputAudioFrame,
}


@dataclass(frozen=True, slots=True)
class Profile:
    """Sizes of one benchmark run; ``full``, ``quick`` and ``tiny`` are predefined."""

    name: str
    latency_ns: tuple[int, ...]  # pipeline lengths N for scenario a
    latency_ticks: int  # paced frames per variant and N
    tight_frames: int  # back-to-back frames per tight-loop repeat (at most)
    tight_repeats: int
    tight_budget_s: float  # fewer frames for a variant whose repeat would take longer
    throughput_stages: int
    throughput_frames: int
    throughput_repeats: int
    throughput_budget_s: float  # likewise, per throughput run
    interruption_stages: int
    interruption_backlog: int
    interruption_repeats: int
    concurrency_ks: tuple[int, ...]
    concurrency_stages: int
    concurrency_duration_s: float
    concurrency_variants: tuple[str, ...]
    idle_pipelines: int
    idle_stages: int
    import_runs: int


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full",
        latency_ns=(1, 5, 10, 20, 50),
        latency_ticks=250,
        tight_frames=20_000,
        tight_repeats=5,
        tight_budget_s=0.3,
        throughput_stages=10,
        throughput_frames=50_000,
        throughput_repeats=3,
        throughput_budget_s=4.0,
        interruption_stages=10,
        interruption_backlog=50,
        interruption_repeats=20,
        concurrency_ks=(1, 10, 100, 1000),
        concurrency_stages=5,
        concurrency_duration_s=10.0,
        concurrency_variants=("system", "data", "feeders", "pacer", "output", "output-pygc"),
        idle_pipelines=1000,
        idle_stages=5,
        import_runs=9,
    ),
    "quick": Profile(
        name="quick",
        latency_ns=(1, 10, 50),
        latency_ticks=50,
        tight_frames=5_000,
        tight_repeats=3,
        tight_budget_s=0.05,
        throughput_stages=10,
        throughput_frames=20_000,
        throughput_repeats=1,
        throughput_budget_s=0.5,
        interruption_stages=10,
        interruption_backlog=50,
        interruption_repeats=10,
        concurrency_ks=(1, 10, 100),
        concurrency_stages=5,
        concurrency_duration_s=3.0,
        concurrency_variants=("system",),
        idle_pipelines=300,
        idle_stages=5,
        import_runs=5,
    ),
    "tiny": Profile(
        name="tiny",
        latency_ns=(1, 3),
        latency_ticks=4,
        tight_frames=300,
        tight_repeats=1,
        tight_budget_s=0.02,
        throughput_stages=10,
        throughput_frames=1_000,
        throughput_repeats=1,
        throughput_budget_s=0.2,
        interruption_stages=3,
        interruption_backlog=10,
        interruption_repeats=2,
        concurrency_ks=(2,),
        concurrency_stages=5,
        concurrency_duration_s=0.2,
        concurrency_variants=("system", "data", "feeders", "pacer", "output", "output-pygc"),
        idle_pipelines=20,
        idle_stages=5,
        import_runs=1,
    ),
}


# ------------------------------------------------------------------ statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summarize_ns(values_ns: Sequence[int], unit: str = "us") -> dict[str, float]:
    """p50, p99, mean, min and max of nanosecond samples, converted to ``unit``."""
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6}[unit]
    ordered = sorted(values_ns)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50) / scale,
        "p99": percentile(ordered, 99) / scale,
        "mean": statistics.fmean(ordered) / scale,
        "min": ordered[0] / scale,
        "max": ordered[-1] / scale,
    }


class Histogram:
    """Fixed-memory histogram of nanosecond values, for runs with millions of samples."""

    def __init__(self, bin_ns: int, max_ns: int) -> None:
        self.bin_ns = bin_ns
        self.bins = array("q", bytes(8 * (max_ns // bin_ns + 1)))
        self._last = len(self.bins) - 1
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def add(self, value_ns: int) -> None:
        """Record one sample (negative values count as zero)."""
        # Plain comparisons, not min/max: this runs once or twice per frame measured.
        if value_ns < 0:
            value_ns = 0
        index = value_ns // self.bin_ns
        self.bins[index if index < self._last else self._last] += 1
        self.count += 1
        self.total_ns += value_ns
        if value_ns > self.max_ns:
            self.max_ns = value_ns

    def quantile_ns(self, q: float) -> float:
        """Upper edge of the bin holding the nearest-rank percentile ``q`` (0..100)."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for index, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return float(min((index + 1) * self.bin_ns, max(self.max_ns, 1)))
        return float(self.max_ns)

    def count_above(self, threshold_ns: int) -> int:
        """Samples of at least ``threshold_ns`` (to the bin's resolution)."""
        return sum(self.bins[threshold_ns // self.bin_ns :])

    def summary(self, unit: str = "us") -> dict[str, float]:
        """Same shape as :func:`summarize_ns`."""
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6}[unit]
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "p50": self.quantile_ns(50) / scale,
            "p99": self.quantile_ns(99) / scale,
            "mean": self.total_ns / self.count / scale,
            "max": self.max_ns / scale,
        }


# ---------------------------------------------------------------- memory


def current_rss_kib() -> int:
    """Resident set size now, from /proc/self/statm (peak RSS where that is missing)."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return peak_rss_kib()


def peak_rss_kib() -> int:
    """Peak resident set size of this process in KiB (``ru_maxrss`` is KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ------------------------------------------------------------------ the rig


def frame_factory(kind: str) -> Callable[[], InputAudioFrame | OutputAudioFrame]:
    """A function making one 20 ms 16 kHz mono frame: ``system`` (input) or ``data`` (output)."""
    cls = FRAME_KINDS[kind]

    def make() -> InputAudioFrame | OutputAudioFrame:
        return cls(audio=AUDIO, sample_rate=SAMPLE_RATE)

    return make


class Passthrough(Processor):
    """A stage with no handlers: every frame is pushed on unchanged."""


class StampSink(Processor):
    """Last stage: stamps and consumes audio frames, passes lifecycle frames on.

    For latency, the feeder appends its push stamp to :attr:`t0s` before the
    push; the sink pairs stamps in order (frames keep their order) and hands
    ``arrival - push`` to ``record``.
    """

    def __init__(self, record: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.t0s: deque[int] = deque()
        self.latencies: list[int] = []
        self._record = record if record is not None else self.latencies.append
        self.audio_count = 0
        self.last_ns = 0
        self.end_ns = 0
        self.interruption_ns = 0
        self.started = anyio.Event()
        self._goal = CountGoal()

    def expect(self, total: int) -> anyio.Event:
        """An event set once ``total`` audio frames have arrived in all."""
        return self._goal.expect(self.audio_count, total)

    async def receive(self, frame: Frame, direction: Direction) -> None:
        now = perf_counter_ns()
        if isinstance(frame, AudioFrame):
            self.audio_count += 1
            self.last_ns = now
            if self.t0s:
                self._record(now - self.t0s.popleft())
            self._goal.counted(self.audio_count)
            return
        if isinstance(frame, InterruptionFrame):
            self.interruption_ns = now
        elif isinstance(frame, StartFrame):
            self.started.set()
        elif isinstance(frame, EndFrame):
            self.end_ns = now
        await super().receive(frame, direction)


@dataclass(slots=True)
class Rig:
    """A task running ``stages`` then a sink; ``head`` is the first stage."""

    task: PipelineTask
    head: Processor
    sink: StampSink

    async def start(self, tg: TaskGroup) -> None:
        """Run the task in ``tg`` and return once the Start frame reached the sink."""
        tg.start_soon(self.task.run)
        await self.sink.started.wait()

    async def queue(self, frame: Frame) -> None:
        """Stamp and queue ``frame`` the way an application does (``task.queue_frame``)."""
        self.sink.t0s.append(perf_counter_ns())
        await self.task.queue_frame(frame)

    async def enter(self, frame: Frame) -> None:
        """Stamp and hand ``frame`` straight to the first stage's ``receive``."""
        self.sink.t0s.append(perf_counter_ns())
        await self.head.receive(frame, DOWNSTREAM)


def build_rig(
    n: int,
    *,
    extra: Sequence[Processor] = (),
    record: Callable[[int], None] | None = None,
    name: str = "bench",
) -> Rig:
    """``n`` passthrough stages, then ``extra`` stages, then a :class:`StampSink`, in a task."""
    sink = StampSink(record)
    stages: list[Processor] = [Passthrough() for _ in range(n)]
    stages.extend(extra)
    stages.append(sink)
    task = PipelineTask(Pipeline(stages), TaskParams(name=name))
    return Rig(task=task, head=stages[0], sink=sink)


def rate_summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements, plus the raw values."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def fmt(value: Any, unit: str = "") -> str:
    """A number with sensible precision, or the value as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "-"
        magnitude = abs(value)
        text = (
            f"{value:,.0f}"
            if magnitude >= 1000
            else f"{value:.1f}"
            if magnitude >= 10
            else f"{value:.2f}"
            if magnitude >= 0.1
            else f"{value:.3f}"
        )
        return f"{text} {unit}".strip()
    return str(value)
