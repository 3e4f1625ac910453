"""``parley serve`` as a child process, for the benchmarks that load it (soak, load)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["ServerProcess", "status_mib", "stop_process"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_READY = re.compile(r"on ws://([^:/]+):(\d+)/v1/realtime")


def status_mib(pid: int, key: str) -> float:
    """A size field of /proc/PID/status (VmRSS, VmHWM...) in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {key}")


class ServerProcess:
    """``parley serve`` in a child process on 127.0.0.1 (a free port)."""

    def __init__(self, pipeline: str, overrides: Sequence[str], max_sessions: int) -> None:
        """Describe the server; :meth:`start` runs it."""
        self.args = [sys.executable, "-m", "pipelines.cli", "serve", pipeline]
        self.args += ["--host", "127.0.0.1", "--port", "0", "--max-sessions", str(max_sessions)]
        for item in overrides:
            self.args += ["--set", item]
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the server and wait for its ready line."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        for line in stdout:
            found = _READY.search(line)
            if found:
                self.port = int(found.group(2))
                return
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError(f"parley serve did not start: {' '.join(self.args)}")

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the server still runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL after 30 s)."""
        if self.process is not None:
            stop_process(self.process)


def stop_process(process: subprocess.Popen[str]) -> None:
    """Stop a child like Ctrl-C does (SIGINT), and kill it if it is still there after 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(2)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
