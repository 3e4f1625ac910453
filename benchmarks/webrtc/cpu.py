"""CPU of concurrent WebRTC sessions on the echo pipeline, as the server process sees it.

The talk server runs in a child process (``python -m benchmarks.webrtc serve``)
with the echo pipeline mounted on 127.0.0.1; this process opens N aiortc
clients that each speak continuously (a gliding tone with a little noise,
Opus-encoded like a microphone) and receive the echo. Once every session has
audio flowing both ways, the child's CPU time (user + system, from
``/proc/PID/stat``, all its threads) is read over a measuring window:

    CPU % of one core = server CPU seconds / wall seconds * 100

The clients' own CPU (this process) is reported apart: it is not the server's.
The machine's load average is recorded before and after, since other work on
a shared machine inflates the figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from benchmarks.overhead.subprocess_util import REPO_ROOT

__all__ = ["CpuResult", "measure"]


@dataclass
class CpuResult:
    """One measurement of N concurrent sessions."""

    sessions: int
    window_s: float
    server_cpu_s: float
    server_cpu_pct_of_core: float
    server_cpu_pct_scaled_to_real_time: float
    """The same, scaled to 50 frames a second per session when the clients (on a loaded
    machine) sent fewer: an estimate, since part of the cost does not scale with frames."""
    server_threads: int
    server_cpu_pct_by_thread: dict[str, float]
    clients_cpu_pct_of_core: float
    server_frames_in_per_session_per_s: float
    server_packets_per_session_per_s: float
    echo_frames_per_session_per_s: float
    loadavg_before: list[float]
    loadavg_after: list[float]
    cpu_count: int


def cpu_seconds(path: str) -> float:
    """User + system CPU seconds from a ``/proc/.../stat`` file."""
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _loadavg() -> list[float]:
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def _voice(seconds: float, seed: int, rate: int = 16000) -> bytes:
    """A gliding tone with noise: changes all the time, so Opus works as on speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freq = 200 + 150 * np.sin(2 * np.pi * 0.5 * t + seed)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    x = 0.25 * np.sin(phase) + 0.02 * rng.standard_normal(t.size)
    return (x * 32767).astype("<i2").tobytes()


def _has_audio(client: Any) -> bool:
    return len(client.received) > 10


async def _server_stats(url: str) -> dict[str, Any]:
    """Packets sent, frames received (per session) and CPU seconds by thread kind so far."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{url}/stats") as response:
        stats: dict[str, Any] = await response.json()
    return stats


async def _start_server(
    sessions: int, server_args: list[str]
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.webrtc",
        "serve",
        "--max-sessions",
        str(sessions),
        *server_args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
    if not line.startswith("http://"):
        raise RuntimeError(f"the benchmark server did not start: {line!r}")
    return process, line


async def measure(
    sessions: int = 10,
    window_s: float = 20.0,
    warmup_s: float = 3.0,
    *,
    server_args: list[str] | None = None,
) -> CpuResult:
    """Run ``sessions`` echo sessions and measure the server's CPU over ``window_s``.

    ``server_args`` go to the server's command line (``serve --help``).
    """
    from processors.transports.webrtc.client import WebRTCClient

    loadavg_before = _loadavg()
    server, url = await _start_server(sessions, server_args or [])
    clients = [WebRTCClient(url, with_events=False) for _ in range(sessions)]
    try:
        for i, client in enumerate(clients):
            await client.connect()
            client.say(_voice(window_s + warmup_s + 30, seed=i), 16000)
        for client in clients:
            await client.wait_for(partial(_has_audio, client), timeout_s=60)
        await asyncio.sleep(warmup_s)
        received = [len(c.received) for c in clients]
        before = await _server_stats(url)
        stat = f"/proc/{server.pid}/stat"
        cpu0, mine0, t0 = cpu_seconds(stat), time.process_time(), time.monotonic()
        await asyncio.sleep(window_s)
        cpu1, mine1, t1 = cpu_seconds(stat), time.process_time(), time.monotonic()
        after = await _server_stats(url)
        if after["ended"] or len(after["packets_sent"]) != sessions:
            raise RuntimeError(
                f"sessions ended during the measurement ({after['ended']}): the figure would "
                "not be for all of them; the machine is probably too loaded"
            )
        sent = sum(after["packets_sent"]) - sum(before["packets_sent"])
        heard = sum(after["frames_received"]) - sum(before["frames_received"])
        by_thread = {
            kind: round(100 * (cpu - before["threads"].get(kind, 0.0)) / (t1 - t0), 1)
            for kind, cpu in sorted(after["threads"].items())
        }
        frames = sum(len(c.received) - n for c, n in zip(clients, received, strict=True))
        threads = _threads(server.pid)
    finally:
        for client in clients:
            await client.close()
        server.terminate()
        await server.wait()
    wall = t1 - t0
    return CpuResult(
        sessions=sessions,
        window_s=round(wall, 2),
        server_cpu_s=round(cpu1 - cpu0, 2),
        server_cpu_pct_of_core=round(100 * (cpu1 - cpu0) / wall, 1),
        server_cpu_pct_scaled_to_real_time=round(
            100 * (cpu1 - cpu0) / wall * 50 / max(heard / sessions / wall, 1.0), 1
        ),
        server_threads=threads,
        server_cpu_pct_by_thread=by_thread,
        clients_cpu_pct_of_core=round(100 * (mine1 - mine0) / wall, 1),
        server_frames_in_per_session_per_s=round(heard / sessions / wall, 1),
        server_packets_per_session_per_s=round(sent / sessions / wall, 1),
        echo_frames_per_session_per_s=round(frames / sessions / wall, 1),
        loadavg_before=loadavg_before,
        loadavg_after=_loadavg(),
        cpu_count=os.cpu_count() or 0,
    )


def report(result: CpuResult) -> str:
    """A one-line summary and the JSON of ``result``."""
    summary = (
        f"{result.sessions} WebRTC echo sessions: server {result.server_cpu_pct_of_core} % "
        f"of one core over {result.window_s} s ("
        f"{result.server_cpu_pct_scaled_to_real_time} % scaled to 50 frames/s; "
        f"clients {result.clients_cpu_pct_of_core} %), "
        f"per session and second: server heard {result.server_frames_in_per_session_per_s} "
        f"frames and sent {result.server_packets_per_session_per_s} packets, client got "
        f"{result.echo_frames_per_session_per_s} frames; "
        f"load average {result.loadavg_before} -> {result.loadavg_after}"
    )
    data: dict[str, Any] = asdict(result)
    return summary + "\n" + json.dumps(data)
