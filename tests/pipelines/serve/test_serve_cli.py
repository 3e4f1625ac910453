"""``parley serve`` mistakes end with one line naming the problem and exit code 2 (subprocesses)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _serve(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("parley serve: ")
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("max_duration_s=-1", ("'max_duration_s'", "greater than 0")),
        ("no_such_option=3", ("'no_such_option'", "max_duration_s")),
        ("max_duration_s", ("'max_duration_s'", "name=value")),
        ("max_sessions=0", ("'max_sessions'",)),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(option: str, words: tuple[str, ...]) -> None:
    _one_line_error(_serve("--port", "0", "--option", option), *words)


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error(_serve("--port", str(port)), f"127.0.0.1:{port}", "in use")
    assert "--port" in line


def test_max_sessions_below_one_is_refused() -> None:
    _one_line_error(_serve("--port", "0", "--max-sessions", "0"), "'max_sessions'")


def test_token_file_mistakes(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    _one_line_error(_serve("--port", "0", "--token-file", str(missing)), "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    _one_line_error(_serve("--port", "0", "--token-file", str(empty)), "empty")
    both = tmp_path / "token.txt"
    both.write_text("abcd1234\n")
    _one_line_error(_serve("--port", "0", "--token", "x", "--token-file", str(both)), "not both")


@pytest.mark.anyio
async def test_a_port_in_use_fails_before_the_models_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.serve import app
    from tests.pipelines.serve.helpers import cascade_config

    loads: list[object] = []

    async def preload(*args: object) -> bool:
        loads.append(args)
        return True

    monkeypatch.setattr(app, "preload_models", preload)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(app.ServeError, match=f"127.0.0.1:{port}: the port is in use"):
            await app.serve(cascade_config(), "127.0.0.1", port)
    assert loads == []
