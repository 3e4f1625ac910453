"""Command line of the load benchmark: ``python -m benchmarks.load``; see the package docstring."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from benchmarks.latency.corpus import CorpusError, load_corpus
from benchmarks.latency.environment import environment
from benchmarks.load.runner import (
    IdleMemory,
    Level,
    dump,
    idle_memory,
    ramp,
    spoken_turns,
    wait_no_sessions,
)
from benchmarks.load.talker import Talker
from benchmarks.options import add_server_options
from benchmarks.serve_process import ServerProcess

__all__ = ["LIMITS", "LoadArgsError", "check_args", "check_url", "main"]

PROG = "python -m benchmarks.load"
LIMITS = {"sessions": 16, "levels": 12, "idle": 50, "turns": 20, "minutes": 120}
"""The most the benchmark will do: sessions talking at once, ramp steps, idle sessions,
turns per session, minutes in all."""


class LoadArgsError(ValueError):
    """A command-line value out of the benchmark's bounds; the message names it."""


def _counts(text: str, what: str, most: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise LoadArgsError(
            f"--{what} takes whole numbers separated by commas, not {text!r}"
        ) from None
    bad = [v for v in values if not 1 <= v <= most]
    if bad:
        raise LoadArgsError(f"--{what}: {bad[0]} is out of range; each must be 1..{most}")
    return values


def check_url(url: str) -> str:
    """``url`` if it is a ``ws://127.0.0.1:PORT/.../realtime`` address, else LoadArgsError."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise LoadArgsError(
            f"--url {url!r}: the load benchmark only targets ws://127.0.0.1:PORT "
            "(a server on this machine's loopback)"
        )
    if not parts.path.endswith("/realtime"):
        raise LoadArgsError(f"--url {url!r}: the path must end in /realtime (/v1/realtime)")
    return url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Load benchmark of parley serve.")
    add_server_options(parser)
    parser.add_argument("--url", help="a running server (ws://127.0.0.1:PORT/v1/realtime)")
    parser.add_argument("--server-pid", type=int, help="its process id, for --idle with --url")
    parser.add_argument("--levels", default="1,2,3,4,5,6", help="sessions talking at once")
    parser.add_argument("--idle", default="1,5,20", help="idle sessions to measure RSS with")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-memory step")
    parser.add_argument("--no-ramp", action="store_true", help="skip the spoken ramp")
    parser.add_argument("--turns", type=int, default=3, help="spoken turns per session (3)")
    parser.add_argument(
        "--spread", type=float, default=2.0, help="first turns spread over this many s (2)"
    )
    parser.add_argument(
        "--silence-ms", type=int, default=500, help="server VAD silence that ends a turn (500)"
    )
    parser.add_argument("--target", type=float, default=1.0, help="voice-to-voice p50 goal, s")
    parser.add_argument("--turn-timeout", type=float, default=60.0, help="per-turn timeout, s")
    parser.add_argument("--max-minutes", type=float, default=45.0, help="whole-run bound")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: the built-in one)")
    return parser


def check_args(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """The ramp levels and idle counts, after checking every bound; LoadArgsError if off."""
    levels = [] if args.no_ramp else _counts(args.levels, "levels", LIMITS["sessions"])
    idle = [] if args.no_idle else _counts(args.idle, "idle", LIMITS["idle"])
    if len(levels) > LIMITS["levels"]:
        raise LoadArgsError(f"--levels: at most {LIMITS['levels']} steps")
    if not levels and not idle:
        raise LoadArgsError("nothing to do: give --levels or --idle")
    if not 1 <= args.turns <= LIMITS["turns"]:
        raise LoadArgsError(f"--turns {args.turns}: must be 1..{LIMITS['turns']}")
    if not 0 <= args.spread <= 60:
        raise LoadArgsError(f"--spread {args.spread}: must be 0..60 s")
    if not 1 <= args.turn_timeout <= 600:
        raise LoadArgsError(f"--turn-timeout {args.turn_timeout}: must be 1..600 s")
    if not 0 < args.max_minutes <= LIMITS["minutes"]:
        raise LoadArgsError(f"--max-minutes {args.max_minutes}: must be 0..{LIMITS['minutes']}")
    if not 100 <= args.silence_ms <= 5000:
        raise LoadArgsError(f"--silence-ms {args.silence_ms}: must be 100..5000")
    if not 0 < args.target <= 60:
        raise LoadArgsError(f"--target {args.target}: must be 0..60 s")
    if args.url is not None:
        check_url(args.url)
        if idle and args.server_pid is None:
            raise LoadArgsError("--idle with --url needs --server-pid (or --no-idle)")
    elif args.server_pid is not None:
        raise LoadArgsError("--server-pid goes with --url")
    return levels, idle


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(idle: list[IdleMemory], levels: list[Level], target_s: float) -> dict[str, Any]:
    """The headline figures: the 20/1 RSS ratio and the most sessions within ``target_s``."""
    result: dict[str, Any] = {}
    if idle:
        first, last = idle[0], idle[-1]
        result["idle_rss_ratio"] = {
            "of": [last.sessions, first.sessions],
            "server": last.server_mib / first.server_mib,
            "tree": last.tree_mib / first.tree_mib,
        }
    if levels:
        passing = [
            lv.sessions
            for lv in levels
            if lv.voice_to_voice["n"] and not lv.unanswered and lv.voice_to_voice["p50"] <= target_s
        ]
        result["most_sessions_within_target"] = max(passing, default=0)
        result["target_s"] = target_s
    return result


async def _run(
    args: argparse.Namespace, url: str, pid: int | None, levels: list[int], idle: list[int]
) -> dict[str, Any]:
    folder = args.corpus
    if folder is None:
        from benchmarks.latency.generate import builtin_corpus

        folder = builtin_corpus(progress=_log)
    pool = spoken_turns(load_corpus(folder))
    report = print
    with anyio.fail_after(args.max_minutes * 60):
        warm = await Talker(url, [pool[0]], args.turn_timeout, args.silence_ms).run()
        if warm[0].voice_to_voice_s is None:
            raise RuntimeError(f"the warm-up turn got no reply: {warm[0].error}")
        report(f"warm-up turn: voice-to-voice {warm[0].voice_to_voice_s:.2f} s")
        await wait_no_sessions(url, args.turn_timeout)
        memory = []
        if pid is not None and idle:
            memory = await idle_memory(url, pid, idle, args.turn_timeout, report)
        ramped = await ramp(
            url,
            levels,
            pool,
            turns=args.turns,
            spread_s=args.spread,
            turn_timeout_s=args.turn_timeout,
            report=report,
            pid=pid,
            silence_ms=args.silence_ms,
        )
    return {"idle": memory, "levels": ramped}


def main(argv: Sequence[str] | None = None) -> int:
    """Run it: 0 when it ran to the end, 2 on bad input or a failed run, 130 on Ctrl-C."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        levels, idle = check_args(args)
    except LoadArgsError as exc:
        _log(f"{PROG}: {exc}")
        return 2
    started = datetime.datetime.now(datetime.UTC)
    env = environment()
    server: ServerProcess | None = None
    try:
        if args.url is not None:
            url, pid = args.url, args.server_pid
        else:
            most = max(levels + idle)
            server = ServerProcess(args.pipeline, args.set, max_sessions=most)
            server.start()
            url, pid = f"ws://127.0.0.1:{server.port}/v1/realtime", server.pid
            _log(f"parley serve (pid {server.pid}) on 127.0.0.1:{server.port}")
        results = anyio.run(lambda: _run(args, url, pid, levels, idle))
    except KeyboardInterrupt:
        _log(f"{PROG}: interrupted; the figures printed so far are complete")
        return 130
    except (RuntimeError, TimeoutError, OSError, CorpusError, ValueError) as exc:
        _log(f"{PROG}: {type(exc).__name__}: {exc}")
        return 2
    finally:
        if server is not None:
            server.stop()
    headline = summary(results["idle"], results["levels"], args.target)
    if "idle_rss_ratio" in headline:
        ratio = headline["idle_rss_ratio"]
        print(
            f"RSS with {ratio['of'][0]} idle sessions / with {ratio['of'][1]}: "
            f"{ratio['server']:.2f}x (server), {ratio['tree']:.2f}x (with children)"
        )
    if "most_sessions_within_target" in headline:
        print(
            f"most sessions talking at once with voice-to-voice p50 <= {args.target:g} s "
            f"and every turn answered: {headline['most_sessions_within_target']}"
        )
    if args.json:
        dump(
            args.json,
            {
                "started": started.isoformat(timespec="seconds"),
                "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
                "environment": env,
                "load_average_after": list(os.getloadavg()),
                "idle": [asdict(m) for m in results["idle"]],
                "levels": [lv.to_json() for lv in results["levels"]],
                "summary": headline,
            },
        )
    return 0
