"""Command line of the soak benchmark: ``python -m benchmarks.soak``; see the package docstring."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from benchmarks.options import add_server_options
from benchmarks.serve_process import ServerProcess, status_mib
from benchmarks.soak.client import SessionOutcome, Speaker, health, question_audio

__all__ = ["CycleResult", "main", "run_soak"]

QUESTION = "What is the capital of France?"


@dataclass(slots=True)
class CycleResult:
    """One cycle: the server's memory and what the sessions got."""

    cycle: int
    idle_rss_mib: float
    peak_rss_mib: float
    seconds: float
    answered: int
    sessions: int
    errors: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _settle(server: ServerProcess, timeout_s: float) -> float:
    """Wait until the server has no session and its RSS is steady; return it in MiB."""
    with anyio.fail_after(timeout_s):
        while (await health("127.0.0.1", server.port))["sessions"]:  # noqa: ASYNC110 (another process)
            await anyio.sleep(0.2)
        previous = status_mib(server.pid, "VmRSS")
        while True:
            await anyio.sleep(1.0)
            current = status_mib(server.pid, "VmRSS")
            if abs(current - previous) < 1.0:
                return current
            previous = current


async def _cycle(
    server: ServerProcess, index: int, audio: bytes, sessions: int, speakers: int, timeout_s: float
) -> CycleResult:
    url = f"ws://127.0.0.1:{server.port}/v1/realtime"
    started = time.monotonic()
    clients = [Speaker(url, audio, timeout_s) for _ in range(sessions)]
    slots = anyio.Semaphore(speakers)
    release = anyio.Event()
    peak = 0.0

    async def watch_peak() -> None:
        nonlocal peak
        while True:
            peak = max(peak, status_mib(server.pid, "VmRSS"))
            await anyio.sleep(0.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_peak)
        async with anyio.create_task_group() as sessions_tg:
            for client in clients:
                sessions_tg.start_soon(client.run, slots, release)
            for client in clients:  # all connected and answered: now they close together
                await client.answered.wait()
            release.set()
        tg.cancel_scope.cancel()
    idle = await _settle(server, timeout_s)
    outcomes: list[SessionOutcome] = [c.outcome for c in clients]
    return CycleResult(
        cycle=index,
        idle_rss_mib=idle,
        peak_rss_mib=max(peak, idle),
        seconds=time.monotonic() - started,
        answered=sum(1 for o in outcomes if o.status == "completed" and o.audio_bytes > 0),
        sessions=sessions,
        errors=sorted({o.error for o in outcomes if o.error}),
    )


async def run_soak(
    server: ServerProcess,
    *,
    cycles: int,
    sessions: int,
    speakers: int,
    timeout_s: float,
    report: Any = print,
) -> tuple[float, list[CycleResult]]:
    """Run the cycles against a started server; returns (RSS before cycle 1, the cycles)."""
    audio = question_audio(QUESTION)
    before = await _settle(server, timeout_s)
    report(f"idle RSS before cycle 1: {before:.0f} MiB")
    results: list[CycleResult] = []
    for index in range(1, cycles + 1):
        result = await _cycle(server, index, audio, sessions, speakers, timeout_s)
        results.append(result)
        errors = f"  errors: {'; '.join(result.errors)}" if result.errors else ""
        report(
            f"cycle {index:>2}: idle RSS {result.idle_rss_mib:7.0f} MiB   peak "
            f"{result.peak_rss_mib:7.0f} MiB   answered {result.answered}/{sessions}"
            f"   {result.seconds:5.0f} s{errors}"
        )
        if not server.alive():
            raise RuntimeError("the server died")
    return before, results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.splitlines()[0]
    )
    add_server_options(parser)
    parser.add_argument("--cycles", type=int, default=10, help="cycles (default 10)")
    parser.add_argument("--sessions", type=int, default=20, help="sessions per cycle (20)")
    parser.add_argument(
        "--speakers", type=int, default=4, help="sessions speaking at once (default 4)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.10, help="allowed growth after cycle 1 (0.10)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per-step timeout, s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; 0 when the last idle RSS is within tolerance of the first, else 1."""
    args = _parser().parse_args(argv)
    if args.cycles < 1 or args.sessions < 1 or args.speakers < 1:
        _log("python -m benchmarks.soak: --cycles, --sessions and --speakers must be >= 1")
        return 2
    server = ServerProcess(args.pipeline, args.set, max_sessions=args.sessions)
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    try:
        server.start()
        _log(f"parley serve (pid {server.pid}) on 127.0.0.1:{server.port}")
        before, results = anyio.run(
            lambda: run_soak(
                server,
                cycles=args.cycles,
                sessions=args.sessions,
                speakers=args.speakers,
                timeout_s=args.timeout,
            )
        )
    except (RuntimeError, TimeoutError) as exc:
        _log(f"python -m benchmarks.soak: {exc}")
        return 2
    finally:
        server.stop()
    first, last = results[0].idle_rss_mib, results[-1].idle_rss_mib
    growth = (last - first) / first
    ok = abs(growth) <= args.tolerance
    unanswered = sum(r.sessions - r.answered for r in results)
    print(
        f"idle RSS after cycle {results[-1].cycle} is {growth:+.1%} against cycle 1 "
        f"({first:.0f} -> {last:.0f} MiB; tolerance {args.tolerance:.0%}): "
        f"{'PASS' if ok else 'FAIL'}; sessions without an answer: {unanswered}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started.isoformat(timespec="seconds"),
                    "command": " ".join(sys.argv),
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg(),
                    "idle_rss_before_mib": before,
                    "cycles": [asdict(r) for r in results],
                    "growth": growth,
                    "pass": ok,
                },
                indent=2,
            )
        )
    if unanswered:
        return 2
    return 0 if ok else 1
