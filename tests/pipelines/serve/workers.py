"""Real ``parley serve`` worker processes for the deployment tests (127.0.0.1, free ports)."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[3]
_READY = re.compile(r"on ws://127\.0\.0\.1:(\d+)/v1/realtime")
CHEAP = ("--option", "eager_start=false")
"""Sessions load no model until they get audio or a response (the tests send neither)."""


@dataclass
class Worker:
    """A running ``parley serve`` process and its port."""

    process: subprocess.Popen[str]
    port: int
    log: IO[str]

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` (SIGKILL by default) if it still runs."""
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        """Make sure it has exited (SIGKILL when needed) and close its log."""
        self.kill()
        try:
            self.process.wait(timeout=20)
        finally:
            self.log.close()

    def stderr(self) -> str:
        """What the worker logged so far."""
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")


def start_worker(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 120.0
) -> Worker:
    """Start ``parley serve --port 0 ARGS`` and wait for its ready line."""
    log = tempfile.NamedTemporaryFile("w+", prefix="parley-worker-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    worker = Worker(process, 0, log)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.5):
                match = _READY.search(process.stdout.readline())
                if match:
                    worker.port = int(match.group(1))
                    return worker
    worker.stop()
    raise AssertionError(f"parley serve did not start: {worker.stderr()}")


@contextmanager
def workers(count: int, *args: str, env: Mapping[str, str] | None = None) -> Iterator[list[Worker]]:
    """``count`` workers, all stopped when the block ends."""
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(start_worker(*args, env=env))
        yield started
    finally:
        for worker in started:
            worker.stop()


def free_port() -> int:
    """A port nothing listens on now (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
