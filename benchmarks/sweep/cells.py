"""One cell of a sweep: a configuration of one pipeline over one conversation.

A cell runs as a plain ``parley bench`` in a child process, in a temporary folder
on whichever machine runs it, and comes back as the files that run wrote
(``results.jsonl``, ``results.json``, the events, its log). The same function
serves both executors: the local one calls it directly, the Ray one as a task on
a cluster node, so a cell's output does not depend on where it ran.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BENCH_DIR", "CellOutput", "CellSpec", "run_cell"]

BENCH_DIR = "bench"
"""Folder of a cell's ``parley bench`` output, inside the cell's folder."""
STOP_GRACE_S = 60.0
"""How long an interrupted cell may take to measure what it played and exit."""


class CellSpec(BaseModel):
    """Everything that decides what a cell measures (its identity for resuming)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline_file: str = Field(description="the pipeline file as the sweep resolved it")
    pipeline_name: str = Field(description="[pipeline] name of that file")
    pipeline_sha256: str = Field(description="hash of the file: an edited file is a new cell")
    label: str = Field(description="the grid settings that apply to this pipeline")
    overrides: list[str] = Field(default_factory=list, description="--set arguments, in order")
    conversation: str
    quick: bool = False
    corpus: str | None = Field(default=None, description="--corpus folder (None: built-in)")
    corpus_digest: str = ""
    turns: int | None = None

    @property
    def key(self) -> str:
        """A hash of the spec: equal specs measure the same thing."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    @property
    def cell_id(self) -> str:
        """Folder name of the cell: readable prefix and the spec's hash."""
        prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{self.pipeline_name}.{self.conversation}")
        return f"{prefix}.{self.key}"

    @property
    def name(self) -> str:
        """The row name of the cell's configuration in the merged report."""
        return f"{self.pipeline_name} [{self.label}]"

    def bench_argv(self, out: Path) -> list[str]:
        """Arguments of the ``parley bench`` run that measures this cell into ``out``."""
        argv = [self.pipeline_file, "--conversation", self.conversation, "--out", str(out)]
        argv.append("--no-plots")
        if self.quick:
            argv.append("--quick")
        if self.corpus is not None:
            argv += ["--corpus", self.corpus]
        if self.turns is not None:
            argv += ["--turns", str(self.turns)]
        for item in self.overrides:
            argv += ["--set", item]
        return argv


@dataclass
class CellOutput:
    """What a cell's run produced, wherever it ran."""

    exit_code: int
    files: dict[str, bytes] = field(default_factory=dict)
    """Every file of the bench's output folder, by path relative to it."""
    node: str = ""
    started: str = ""
    elapsed_s: float = 0.0
    load_average: list[float] = field(default_factory=list)
    """The node's 1-minute load average at the start and at the end of the cell."""
    resources: dict[str, float] = field(default_factory=dict)
    """What the cell had reserved on a cluster node (Ray: ``{"CPU": n}``); empty here."""

    @property
    def finished(self) -> bool:
        """True when the bench ran to the end (exit 0, or 1 when a pipeline failed)."""
        return self.exit_code in (0, 1) and "results.json" in self.files

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the bench's output, for error messages."""
        text = self.files.get("bench.log", b"").decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def _load1() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Let an interrupted bench measure what it played, then make sure it is gone."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()
        process.wait()


def run_cell(spec: CellSpec) -> CellOutput:
    """Run one cell's ``parley bench`` in a child process and return its files.

    An interrupt (KeyboardInterrupt, or a Ray cancellation) stops the child with
    SIGINT and waits for it before passing the interrupt on: nothing is left running.
    """
    with tempfile.TemporaryDirectory(prefix="parley-sweep-") as tmp:
        out = Path(tmp) / BENCH_DIR
        out.mkdir()
        argv = [sys.executable, "-m", "benchmarks.cli", *spec.bench_argv(out)]
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        load0, t0 = _load1(), time.monotonic()
        env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
        with (out / "bench.log").open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
            try:
                code = process.wait()
            except BaseException:
                _stop(process)
                raise
        files = {
            str(path.relative_to(out)): path.read_bytes()
            for path in sorted(out.rglob("*"))
            if path.is_file()
        }
        return CellOutput(
            exit_code=code,
            files=files,
            node=socket.gethostname(),
            started=started,
            elapsed_s=round(time.monotonic() - t0, 2),
            load_average=[load0, _load1()],
        )
