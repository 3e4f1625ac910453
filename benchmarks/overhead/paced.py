"""Scenario d, variant ``output``: K sessions playing bot audio through paced outputs.

Each session is a task of N passthrough stages and the real
:class:`~processors.transports.output.OutputTransport` (its null output, which writes
with ``write_chunk_now``: after the first chunk of a stretch, from the pacer's
tick), which cuts the audio into 20 ms chunks and writes each when it is due. A stand-in for a TTS
per session queues the reply in ``piece_ms`` pieces at the output rate, keeping
``lead_ms`` ahead of playback and waking with
:func:`~processors.transports.base.sleep_until_ns` (the paced stream's own clock),
so pacing is counted in full: the outputs' chunk timing and the sources' wake-ups.
Sessions start spread evenly over one 20 ms period.

Each write is timed against the session's ideal schedule: chunk ``k`` at the first
chunk's write time plus ``k`` x 20 ms, so a stall the output re-anchored after shows
as lateness of every later chunk rather than being forgiven. Kept up: every chunk
written and 99 % of them less than 20 ms late. Also reported: how late each write
was against the output's own schedule (its ``play_ns``, which restarts after a
stall), and how many times the schedule restarted.

Variant ``output`` runs with the garbage collector as ``parley serve`` and ``parley
talk`` set it (:func:`framework.runtime.tune_gc`); ``output-pygc`` keeps Python's
thresholds, the baseline for that setting in the same run.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import anyio

from benchmarks.overhead.common import (
    PERIOD_NS,
    Histogram,
    Rig,
    build_rig,
    current_rss_kib,
    peak_rss_kib,
)
from processors.transports.base import sleep_until_ns
from processors.transports.output import OutputTransport

__all__ = ["PIECE_MS", "run_output_sessions"]

PIECE_MS = 100  # audio per TTS piece
LEAD_MS = 200  # how far ahead of playback the stand-in TTS keeps the queue
GRACE_S = 5.0


class _TimedOutput(OutputTransport):
    """The null output, timing every write against the session's ideal schedule."""

    def __init__(self, lateness: Histogram, own: Histogram, name: str) -> None:
        super().__init__(name=name)
        self.lateness = lateness
        self.own = own
        self.reanchored = 0
        self.first_ns: int | None = None
        self.last_play_ns = 0
        self.written = 0
        self.done = anyio.Event()
        self.goal = 0

    def write_chunk_now(self, pcm: bytes, play_ns: int) -> None:
        now = time.monotonic_ns()
        if self.first_ns is None:
            self.first_ns = now
        elif play_ns - self.last_play_ns != PERIOD_NS:
            self.reanchored += 1
        self.last_play_ns = play_ns
        self.own.add(now - play_ns)
        self.lateness.add(now - self.first_ns - self.written * PERIOD_NS)
        self.written += 1
        if self.written == self.goal:
            self.done.set()


async def _tts(rig: Rig, rate: int, start_ns: int, pieces: int) -> None:
    """From ``start_ns`` on, queue ``pieces`` of audio, ``LEAD_MS`` ahead of playback."""
    from framework.frames import OutputAudioFrame

    audio = bytes(2 * rate * PIECE_MS // 1000)
    piece_ns = PIECE_MS * 1_000_000
    for index in range(pieces):
        await sleep_until_ns(max(start_ns, start_ns + index * piece_ns - LEAD_MS * 1_000_000))
        await rig.task.queue_frame(OutputAudioFrame(audio=audio, sample_rate=rate))


async def run_output_sessions(
    k: int, stages: int, duration_s: float, variant: str = "output"
) -> dict[str, Any]:
    """Run K output sessions for ``duration_s`` of audio each; the child's result."""
    lateness = Histogram(bin_ns=100_000, max_ns=20_000_000_000)
    own = Histogram(bin_ns=100_000, max_ns=20_000_000_000)
    pieces = max(1, round(duration_s * 1000 / PIECE_MS))
    chunks = pieces * PIECE_MS * 1_000_000 // PERIOD_NS
    import framework.audio  # noqa: F401  # the output's first frame would import it (numpy)

    rss_empty = current_rss_kib()
    outputs = [_TimedOutput(lateness, own, f"session{i}.output") for i in range(k)]
    rigs = [build_rig(stages, extra=[out], name=f"session{i}") for i, out in enumerate(outputs)]
    for out in outputs:
        out.goal = chunks
    async with anyio.create_task_group() as tg:
        for rig in rigs:
            tg.start_soon(rig.task.run)
        for rig in rigs:
            await rig.sink.started.wait()
        rate = outputs[0].sample_rate
        gc.collect()
        rss_ready = current_rss_kib()
        first = time.monotonic_ns() + 50_000_000
        await anyio.sleep(0.04)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with anyio.move_on_after(duration_s + GRACE_S) as cut:
            async with anyio.create_task_group() as sources:
                for index, rig in enumerate(rigs):
                    start = first + index * PERIOD_NS // k
                    sources.start_soon(_tts, rig, rate, start, pieces)
            for out in outputs:
                await out.done.wait()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        tg.cancel_scope.cancel()

    expected = k * chunks
    delivered = sum(out.written for out in outputs)
    late = lateness.summary("ms")
    return {
        "k": k,
        "variant": variant,
        "gc_thresholds": list(gc.get_threshold()),
        "stages": stages,
        "duration_s": duration_s,
        "piece_ms": PIECE_MS,
        "lead_ms": LEAD_MS,
        "wall_s": wall1 - wall0,
        "cpu_s": cpu1 - cpu0,
        "cpu_pct_of_one_core": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "frames_expected": expected,
        "frames_fed": k * pieces,
        "frames_delivered": delivered,
        "cut_short": cut.cancelled_caught,
        "latency_us": {"count": 0},
        "feeder_lateness_ms": {"count": 0},
        "playout_lateness_ms": late,
        "chunks_over_20ms_late": lateness.count_above(PERIOD_NS),
        "lateness_vs_own_schedule_ms": own.summary("ms"),
        "schedule_restarts": sum(out.reanchored for out in outputs),
        "kept_up": (
            delivered == expected
            and not cut.cancelled_caught
            and late.get("p99", 0.0) * 1e6 < PERIOD_NS
        ),
        "rss_empty_kib": rss_empty,
        "rss_ready_kib": rss_ready,
        "peak_rss_kib": peak_rss_kib(),
    }
