"""The load benchmark's two measurements: idle-session memory, and spoken sessions ramped up.

Both run against a started server, given by its URL and (for memory) its
process id; :mod:`benchmarks.load.cli` starts one or takes ``--url``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from benchmarks.latency.corpus import Corpus
from benchmarks.latency.stats import summarize
from benchmarks.load.stages import read_stage_totals, stage_means
from benchmarks.load.talker import (
    SILENCE_MS,
    Talker,
    TalkTurn,
    TurnRecord,
    configure,
    turn_of,
)
from benchmarks.serve_process import status_mib
from benchmarks.soak.client import health

__all__ = [
    "IdleMemory",
    "Level",
    "child_pids",
    "idle_memory",
    "ramp",
    "run_level",
    "script",
    "spoken_turns",
    "tree_cpu_s",
    "tree_rss_mib",
    "wait_no_sessions",
]

Report = Callable[[str], None]


@dataclass(slots=True)
class IdleMemory:
    """The server's resident memory with ``sessions`` idle sessions open (MiB)."""

    sessions: int
    server_mib: float
    tree_mib: float
    """The server and its child processes (pocketsphinx decoders, if any)."""


@dataclass(slots=True)
class Level:
    """One step of the ramp: ``sessions`` talking at once."""

    sessions: int
    turns: list[TurnRecord] = field(default_factory=list)
    seconds: float = 0.0
    load_average: float = 0.0
    server_cpu_s: float | None = None
    """CPU seconds the server (and its children) spent during the level."""
    stage_s: dict[str, float] = field(default_factory=dict)
    """Mean seconds per stage over the level, as the server measured them
    (:mod:`benchmarks.load.stages`; empty without the server's ``/metrics``)."""

    @property
    def voice_to_voice(self) -> dict[str, Any]:
        """n, p50, p90... of the answered turns' voice-to-voice times (seconds)."""
        return summarize(t.voice_to_voice_s for t in self.turns)

    @property
    def unanswered(self) -> int:
        """Turns that got no audio reply."""
        return sum(1 for t in self.turns if t.voice_to_voice_s is None)

    def to_json(self) -> dict[str, Any]:
        """Every figure of the level as JSON-ready values."""
        return {
            "sessions": self.sessions,
            "seconds": self.seconds,
            "load_average": self.load_average,
            "server_cpu_s": self.server_cpu_s,
            "stage_mean_s": self.stage_s,
            "voice_to_voice_s": self.voice_to_voice,
            "unanswered": self.unanswered,
            "turns": [asdict(t) for t in self.turns],
        }


def child_pids(pid: int) -> list[int]:
    """The process ids of the direct children of process ``pid``."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text(encoding="ascii")
        except OSError:
            continue
        found += [int(c) for c in text.split()]
    return found


def _tree(pid: int) -> list[int]:
    found, todo = [pid], child_pids(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += child_pids(child)
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of process ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def tree_rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of process ``pid`` alone and with all its descendants, in MiB."""
    own = status_mib(pid, "VmRSS")
    total = own
    for child in _tree(pid)[1:]:
        try:
            total += status_mib(child, "VmRSS")
        except (OSError, RuntimeError):  # gone meanwhile, or a zombie
            continue
    return own, total


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def wait_no_sessions(url: str, timeout_s: float) -> None:
    """Wait until the server's ``/health`` reports no open session."""
    host, port = _host_port(url)
    with anyio.fail_after(timeout_s):
        while (await health(host, port))["sessions"]:  # noqa: ASYNC110 (another process)
            await anyio.sleep(0.2)


async def _steady_rss(pid: int, timeout_s: float) -> tuple[float, float]:
    """The RSS once it moves by less than 1 MiB over a second (or at the timeout)."""
    previous = tree_rss_mib(pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await anyio.sleep(1.0)
        current = tree_rss_mib(pid)
        if abs(current[1] - previous[1]) < 1.0:
            return current
        previous = current
    return previous


class _Idle:
    """``count`` idle sessions: :attr:`all_ready` once each is configured."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ready = 0
        self.all_ready = anyio.Event()
        self.release = anyio.Event()

    async def hold(self, url: str, timeout_s: float) -> None:
        import websockets

        async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
            await configure(ws, timeout_s)
            self.ready += 1
            if self.ready == self.count:
                self.all_ready.set()
            await self.release.wait()


async def idle_memory(
    url: str, pid: int, counts: Sequence[int], timeout_s: float, report: Report
) -> list[IdleMemory]:
    """RSS with each of ``counts`` idle sessions open (connected, configured, no audio)."""
    results: list[IdleMemory] = []
    for count in counts:
        idle = _Idle(count)
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(idle.hold, url, timeout_s)
            with anyio.fail_after(timeout_s):
                await idle.all_ready.wait()
            server, tree = await _steady_rss(pid, timeout_s)
            idle.release.set()
        results.append(IdleMemory(count, server, tree))
        report(f"idle sessions {count:>3}: RSS {server:7.1f} MiB (with children {tree:7.1f})")
        await wait_no_sessions(url, timeout_s)
    return results


def spoken_turns(corpus: Corpus) -> list[TalkTurn]:
    """Every plain spoken turn of the corpus (kind ``normal``), in corpus order."""
    pool = [turn_of(i) for c in corpus.conversations for i in c.items if i.kind == "normal"]
    if not pool:
        raise ValueError(f"{corpus.path}: the corpus has no normal spoken turn")
    return pool


def script(pool: Sequence[TalkTurn], index: int, turns: int) -> list[TalkTurn]:
    """The ``turns`` turns talker ``index`` speaks: the next ones of ``pool``, round robin."""
    return [pool[(index * turns + k) % len(pool)] for k in range(turns)]


async def run_level(
    url: str,
    sessions: int,
    pool: Sequence[TalkTurn],
    *,
    turns: int,
    spread_s: float,
    turn_timeout_s: float,
    pid: int | None = None,
    silence_ms: int = SILENCE_MS,
) -> Level:
    """``sessions`` talkers at once, talker ``i`` starting ``i * spread_s / sessions`` late.

    With the server's ``pid``, its CPU time during the level is measured too.
    """
    talkers = [
        Talker(url, script(pool, i, turns), turn_timeout_s, silence_ms) for i in range(sessions)
    ]
    level = Level(sessions)
    host, port = _host_port(url)
    stages_before = await read_stage_totals(host, port)
    cpu_before = tree_cpu_s(pid) if pid is not None else 0.0
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i, talker in enumerate(talkers):
            tg.start_soon(talker.run, i * spread_s / sessions)
    level.seconds = time.monotonic() - started
    level.load_average = os.getloadavg()[0]
    if pid is not None:
        level.server_cpu_s = tree_cpu_s(pid) - cpu_before
    level.stage_s = stage_means(stages_before, await read_stage_totals(host, port))
    level.turns = [record for talker in talkers for record in talker.records]
    return level


async def ramp(
    url: str,
    levels: Sequence[int],
    pool: Sequence[TalkTurn],
    *,
    turns: int,
    spread_s: float,
    turn_timeout_s: float,
    report: Report,
    pid: int | None = None,
    silence_ms: int = SILENCE_MS,
) -> list[Level]:
    """Run each level in turn, waiting for the server to be empty between them."""
    results = []
    for sessions in levels:
        level = await run_level(
            url,
            sessions,
            pool,
            turns=turns,
            spread_s=spread_s,
            turn_timeout_s=turn_timeout_s,
            pid=pid,
            silence_ms=silence_ms,
        )
        results.append(level)
        report(format_level(level))
        await wait_no_sessions(url, turn_timeout_s)
    return results


def format_level(level: Level) -> str:
    """One line of the ramp's table."""
    v2v = level.voice_to_voice
    if not v2v["n"]:
        figures = "no answered turn"
    else:
        figures = f"p50 {v2v['p50']:5.2f} s  p90 {v2v['p90']:5.2f} s  max {v2v['max']:5.2f} s"
    errors = sorted({t.error for t in level.turns if t.error})
    tail = f"  errors: {'; '.join(errors)}" if errors else ""
    cpu = ""
    if level.server_cpu_s is not None and level.turns:
        cpu = f"  server CPU {level.server_cpu_s / len(level.turns):4.1f} s/turn"
    stages = ""
    if level.stage_s:
        means = "  ".join(f"{name} {mean:.2f}" for name, mean in level.stage_s.items())
        stages = f"\n    server means, s: {means}"
    return (
        f"{level.sessions:>2} sessions: {figures}  turns {v2v['n']}/{len(level.turns)}"
        f"{cpu}  load {level.load_average:4.1f}{tail}{stages}"
    )


def dump(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
