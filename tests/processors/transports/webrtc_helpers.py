"""A talk server on 127.0.0.1 for the WebRTC tests, and a census of what a session leaves behind."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from processors.transports.webrtc import WebRTCTransport, WebRTCTransportParams
from processors.transports.webrtc.server import SESSIONS, SessionRegistry

ROOT = Path(__file__).resolve().parents[3]
RunSession = Callable[[Any], Awaitable[None]]


@dataclass
class Server:
    """A running talk server: its URL and its live sessions."""

    url: str
    app: web.Application

    @property
    def sessions(self) -> SessionRegistry:
        return self.app[SESSIONS]

    async def wait_sessions(self, count: int, timeout_s: float = 20.0) -> None:
        """Wait until exactly ``count`` sessions are live."""
        async with asyncio.timeout(timeout_s):
            while len(self.sessions) != count:
                await asyncio.sleep(0.05)


@asynccontextmanager
async def serve(
    run_session: RunSession, params: WebRTCTransportParams | None = None
) -> AsyncIterator[Server]:
    """The live server's app with the WebRTC transport mounted, on a free port."""
    app = web.Application()
    WebRTCTransport.mount(app, params or WebRTCTransportParams(), run_session)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


def config_params(config: Any) -> WebRTCTransportParams:
    """The ``[transport]`` settings of a pipeline config, as the live server reads them."""
    return WebRTCTransportParams.model_validate(config.stage("transport").params)


@dataclass(frozen=True)
class Census:
    """What is running in this process: tasks, threads, sockets, peer connections."""

    tasks: frozenset[str]
    threads: frozenset[str]
    sockets: int
    peer_connections: int

    @classmethod
    def take(cls) -> Census:
        from aiortc import RTCPeerConnection

        gc.collect()
        current = asyncio.current_task()
        tasks = frozenset(
            repr(t.get_coro()) for t in asyncio.all_tasks() if t is not current and not t.done()
        )
        # Worker pools (the event loop's default executor, which encodes Opus, and
        # AnyIO's, which runs the models) keep idle threads for everyone: not a session's.
        pools = ("asyncio_", "ThreadPoolExecutor", "AnyIO worker thread")
        threads = frozenset(
            t.name for t in threading.enumerate() if t.is_alive() and not t.name.startswith(pools)
        )
        sockets = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                continue
        pcs = sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())
        return cls(tasks, threads, sockets, pcs)


async def settled_census(baseline: Census, timeout_s: float = 15.0) -> Census:
    """Take censuses until one matches ``baseline`` (or the time is up); return the last."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        census = Census.take()
        if census == baseline or loop.time() > deadline:
            return census
        await asyncio.sleep(0.2)


def tone(freq: float, seconds: float, rate: int = 16000, level: float = 0.3) -> bytes:
    """A sine tone as mono PCM16."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype("<i2").tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    """The strongest frequency of a clip of mono PCM16."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


def loud_seconds(pcm: bytes, rate: int, threshold: int = 500) -> float:
    """How much of a clip of mono PCM16 is above ``threshold`` (20 ms windows)."""
    x = np.abs(np.frombuffer(pcm, dtype="<i2"))
    hop = rate // 50
    windows = x[: x.size // hop * hop].reshape(-1, hop).max(axis=1)
    return float(np.count_nonzero(windows > threshold) * 0.02)
