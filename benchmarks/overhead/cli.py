"""Command line of the overhead benchmark: ``python -m benchmarks.overhead``."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from benchmarks.overhead.common import PROFILES, Profile
from benchmarks.overhead.subprocess_util import REPO_ROOT

__all__ = ["SCENARIOS", "environment", "main"]

SCENARIOS = ("latency", "throughput", "interruption", "concurrency", "memory")
ALIASES = dict(zip("abcde", SCENARIOS, strict=True))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Where the figures come from: interpreter, CPU, library versions, git commit, load."""
    status = _git("status", "--porcelain")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "anyio": _version("anyio"),
        "parley": _version("parley"),
        "event_loop": "asyncio (anyio backend)",
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": None if status is None else len(status.splitlines()),
        "loadavg_start": list(os.getloadavg()),
    }


def _parse_scenarios(text: str) -> list[str]:
    chosen: list[str] = []
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        name = ALIASES.get(part, part)
        if name not in SCENARIOS:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {part!r}; choose from {', '.join(SCENARIOS)} or a-e"
            )
        if name not in chosen:
            chosen.append(name)
    return [s for s in SCENARIOS if s in chosen]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description="Measure the engine's own cost: latency per hop, throughput, interruption, "
        "concurrent sessions, memory and import time. No AI in the loop.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced sizes, about 25 s")
    size.add_argument("--tiny", action="store_true", help="smallest sizes, a few seconds (tests)")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("results/overhead.json"),
        help="where to write every figure (default: results/overhead.json)",
    )
    parser.add_argument(
        "--scenario",
        type=_parse_scenarios,
        default=list(SCENARIOS),
        help="comma-separated scenarios: latency,throughput,interruption,concurrency,memory "
        "(or a,b,c,d,e); default all",
    )
    parser.add_argument("--no-table", action="store_true", help="do not print the tables")
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", choices=("concurrency", "idle"), help=hidden)
    parser.add_argument("--k", type=int, default=1, help=hidden)
    parser.add_argument("--m", type=int, default=1, help=hidden)
    parser.add_argument("--stages", type=int, default=5, help=hidden)
    parser.add_argument("--duration", type=float, default=1.0, help=hidden)
    parser.add_argument("--variant", default="system", help=hidden)
    parser.add_argument("--mode", default="rss", help=hidden)
    parser.add_argument("--impl", default="parley", help=hidden)
    return parser


async def _in_process(selected: list[str], profile: Profile) -> dict[str, Any]:
    from benchmarks.overhead.interruption import run_interruption
    from benchmarks.overhead.latency import run_latency
    from benchmarks.overhead.throughput import run_throughput

    runners = {
        "latency": run_latency,
        "throughput": run_throughput,
        "interruption": run_interruption,
    }
    results: dict[str, Any] = {}
    for name in selected:
        if name in runners:
            _log(f"  {name} ...")
            results[name] = await runners[name](profile)
    return results


def run_benchmark(selected: list[str], profile: Profile) -> dict[str, Any]:
    """Run the ``selected`` scenarios with ``profile``; return the full results dictionary."""
    from benchmarks.overhead.concurrency import run_concurrency
    from benchmarks.overhead.memory import run_memory
    from benchmarks.overhead.report import evaluate_targets

    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "benchmark": "engine overhead",
            "profile": profile.name,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "scenarios": selected,
        },
        "environment": environment(),
        "scenarios": {},
    }
    scenarios = results["scenarios"]
    scenarios.update(anyio.run(_in_process, selected, profile, backend="asyncio"))
    if "concurrency" in selected:
        scenarios["concurrency"] = run_concurrency(profile, log=_log)
    if "memory" in selected:
        scenarios["memory"] = run_memory(profile, log=_log)
    results["scenarios"] = {name: scenarios[name] for name in selected}
    results["environment"]["loadavg_end"] = list(os.getloadavg())
    results["meta"]["elapsed_s"] = time.perf_counter() - started
    results["targets"] = evaluate_targets(results["scenarios"])
    return results


def _run_child(args: argparse.Namespace) -> int:
    if args.child == "concurrency":
        from benchmarks.overhead.concurrency import child_concurrency

        return child_concurrency(args.k, args.stages, args.duration, args.variant)
    from benchmarks.overhead.memory import child_idle

    return child_idle(args.m, args.stages, args.mode, args.impl)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark as the command line asks; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.child:
        return _run_child(args)
    profile = PROFILES["tiny" if args.tiny else "quick" if args.quick else "full"]
    _log(f"engine overhead benchmark ({profile.name}): {', '.join(args.scenario)}")
    results = run_benchmark(args.scenario, profile)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_table:
        from benchmarks.overhead.report import print_report

        print_report(results)
    _log(f"wrote {args.json} ({results['meta']['elapsed_s']:.1f} s)")
    return 0
