"""Scenario e: memory of an idle started pipeline, and the import time of ``framework``.

Memory is measured in fresh interpreters (``--child idle ...``): one pipeline is
started first (imports, caches and first-use allocations), then M more tasks of
N passthrough stages are started and left idle once their Start frame has
passed. The growth divided by M is the cost of one pipeline: with tracemalloc
(Python allocations, exact, plus the allocation sites) and, in a separate child
without tracemalloc, as resident memory. A bare asyncio.Queue chain of the same
length is measured the same way as a baseline.

Import time is the median over several fresh interpreters of ``import framework``
(and of ``import anyio``, which it pulls in), plus the slowest modules reported
by ``python -X importtime``.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tracemalloc
from pathlib import Path
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup

from benchmarks.overhead.baseline import BareChain
from benchmarks.overhead.common import Passthrough, Profile, current_rss_kib
from benchmarks.overhead.subprocess_util import REPO_ROOT, run_child, run_python
from framework import Pipeline, PipelineTask, Processor, TaskParams
from framework.frames import StartFrame

__all__ = ["child_idle", "measure_imports", "run_memory"]

IMPLS = ("parley", "asyncio.Queue")
TOP_SITES = 12


class _StartCounter(Passthrough):
    """A passthrough stage that counts Start frames, to know when every task has started."""

    seen: ClassVar[int] = 0
    goal: ClassVar[int] = 0
    done: ClassVar[anyio.Event | None] = None

    async def on_start(self, frame: StartFrame) -> None:
        cls = _StartCounter
        cls.seen += 1
        if cls.done is not None and cls.seen >= cls.goal:
            cls.done.set()


async def _start_many(tg: TaskGroup, count: int, stages: int, impl: str) -> list[object]:
    """Start ``count`` idle pipelines in ``tg``; return them (to keep them alive)."""
    kept: list[object] = []
    if impl == "asyncio.Queue":
        for _ in range(count):
            chain = BareChain(stages, "asyncio.Queue")
            await chain.start(tg)
            kept.append(chain)
        await anyio.sleep(0.02)
        return kept
    _StartCounter.goal = _StartCounter.seen + count
    _StartCounter.done = done = anyio.Event()
    for index in range(count):
        procs: list[Processor] = [Passthrough() for _ in range(stages - 1)]
        procs.append(_StartCounter())
        task = PipelineTask(Pipeline(procs), TaskParams(name=f"idle{index}"))
        tg.start_soon(task.run)
        kept.append(task)
    await done.wait()
    await anyio.sleep(0.02)
    return kept


def _short(filename: str) -> str:
    path = Path(filename)
    for root in (REPO_ROOT, *map(Path, sys.path)):
        if root.name and path.is_relative_to(root):
            return str(path.relative_to(root))
    return filename


async def _idle_run(m: int, stages: int, mode: str, impl: str) -> dict[str, Any]:
    async with anyio.create_task_group() as tg:
        await _start_many(tg, 1, stages, impl)  # warm-up: imports, caches
        gc.collect()
        if mode == "tracemalloc":
            tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0] if mode == "tracemalloc" else 0
        snap0 = tracemalloc.take_snapshot() if mode == "tracemalloc" else None
        rss0 = current_rss_kib()
        kept = await _start_many(tg, m, stages, impl)
        gc.collect()
        rss1 = current_rss_kib()
        result: dict[str, Any] = {
            "m": m,
            "stages": stages,
            "impl": impl,
            "mode": mode,
            "started": len(kept),
            "rss_delta_kib": rss1 - rss0,
            "rss_kib_per_pipeline": (rss1 - rss0) / m,
        }
        if snap0 is not None:
            traced1 = tracemalloc.get_traced_memory()[0]
            snap1 = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            tracemalloc.stop()
            result["traced_delta_kib"] = (traced1 - traced0) / 1024
            result["traced_kib_per_pipeline"] = (traced1 - traced0) / 1024 / m
            result["top_sites"] = [
                {
                    "where": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                    "bytes_per_pipeline": stat.size_diff / m,
                    "blocks_per_pipeline": stat.count_diff / m,
                }
                for stat in snap1.compare_to(snap0, "lineno")[:TOP_SITES]
            ]
        tg.cancel_scope.cancel()
    return result


def child_idle(m: int, stages: int, mode: str, impl: str) -> int:
    """Entry point of the child process: measure M idle pipelines, print JSON on stdout."""
    result = anyio.run(_idle_run, m, stages, mode, impl, backend="asyncio")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


_TIMED_IMPORT = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"


def _parse_importtime(stderr: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        try:
            self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
            rows.append(
                {
                    "module": name.strip(),
                    "self_ms": int(self_us) / 1e3,
                    "cumulative_ms": int(cumulative_us) / 1e3,
                }
            )
        except ValueError:
            continue
    return rows


def measure_imports(runs: int) -> dict[str, Any]:
    """Median import time of ``framework`` and ``anyio`` in fresh interpreters, in ms."""
    result: dict[str, Any] = {"runs": runs}
    for module in ("framework", "anyio"):
        times = [
            float(run_python(["-c", _TIMED_IMPORT.format(module)]).stdout.split()[-1]) * 1e3
            for _ in range(runs)
        ]
        result[module] = {"median_ms": statistics.median(times), "runs_ms": times}
    rows = _parse_importtime(run_python(["-X", "importtime", "-c", "import framework"]).stderr)
    rows.sort(key=lambda row: row["cumulative_ms"], reverse=True)
    result["importtime_top"] = rows[:12]
    result["importtime_self_top"] = sorted(rows, key=lambda r: r["self_ms"], reverse=True)[:8]
    result["modules_imported"] = len(rows)
    return result


def run_memory(profile: Profile, log: Any = None) -> dict[str, Any]:
    """Scenario e; idle memory per pipeline (Parley and the bare baseline) and import time."""
    idle: dict[str, Any] = {}
    for impl in IMPLS:
        for mode in ("tracemalloc", "rss"):
            if log is not None:
                log(f"  e: {profile.idle_pipelines} idle {impl} pipelines ({mode})")
            args = [
                "idle",
                f"--m={profile.idle_pipelines}",
                f"--stages={profile.idle_stages}",
                f"--mode={mode}",
                f"--impl={impl}",
            ]
            idle.setdefault(impl, {})[mode] = run_child(args, timeout_s=300)
    if log is not None:
        log(f"  e: import time ({profile.import_runs} fresh interpreters)")
    return {
        "config": {"pipelines": profile.idle_pipelines, "stages": profile.idle_stages},
        "idle": idle,
        "imports": measure_imports(profile.import_runs),
    }
