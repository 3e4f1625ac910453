"""Running a measurement in a fresh interpreter and reading its JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "run_child", "run_python"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_python(args: list[str], *, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` in the repository root; raise if it fails."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )


def run_child(args: list[str], *, timeout_s: float) -> dict[str, Any]:
    """Run ``python -m benchmarks.overhead --child ARGS``; return the JSON it prints last."""
    try:
        done = run_python(["-m", "benchmarks.overhead", "--child", *args], timeout_s=timeout_s)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"benchmark child {' '.join(args)} failed ({exc.returncode}):\n{exc.stderr}"
        ) from exc
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"benchmark child {' '.join(args)} printed nothing:\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
