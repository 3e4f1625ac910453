"""``parley talk`` as a user runs it: a child process, a real client, a signal to stop."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from pipelines.cli import main as parley
from pipelines.config import load_pipeline_file
from pipelines.talk import LiveServer
from tests.pipelines.talk_clients import PlainClient, connect, ws_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
@pytest.mark.models
@pytest.mark.slow
async def test_parley_talk_prints_its_url_serves_and_stops_cleanly_on_sigterm() -> None:
    command = [sys.executable, "-m", "pipelines.cli", "talk", "cascade-local-fast"]
    command += ["--transport", "websocket", "--port", "0"]
    process = await anyio.open_process(command, cwd=ROOT, stderr=subprocess.STDOUT)
    output = b""
    try:
        assert process.stdout is not None
        with anyio.fail_after(60):
            while b"Ctrl-C" not in output:
                output += await process.stdout.receive()
        match = re.search(rb"(http://127\.0\.0\.1:\d+/ws)", output)
        assert match, output.decode()
        async with connect(ws_url(match.group(1).decode())) as socket:
            client = PlainClient(socket)
            await client.wait_ready()  # a session runs, with its models loaded
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                code = await process.wait()
            assert code == 0
            closed = await socket.receive()  # the server closed the session's socket
            assert closed.type.name in ("CLOSE", "CLOSED", "CLOSING"), closed
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


def test_parley_run_with_a_live_transport_serves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, list[str]]] = []

    def fake_talk(path: Path, *, overrides: list[str], **_: object) -> int:
        calls.append((path, list(overrides)))
        return 0

    monkeypatch.setattr("pipelines.talk.talk_main", fake_talk)
    assert parley(["run", "cascade-local", "--set", "transport.backend=twilio"]) == 0
    [(path, overrides)] = calls
    assert path.name == "cascade-local.toml" and overrides == ["transport.backend=twilio"]


def test_parley_run_on_the_file_transport_still_needs_its_files() -> None:
    with pytest.raises(SystemExit, match="--input and --output"):
        parley(["run", "cascade-local"])


def test_a_file_transport_cannot_be_served_live(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_pipeline_file(ROOT / "pipelines" / "cascade-local.toml")
    with pytest.raises(ValueError, match="cannot serve live connections.*websocket"):
        LiveServer(config)
    assert parley(["talk", "cascade-local"]) == 2
    assert "choose a live one with --transport" in capsys.readouterr().err


def test_transport_settings_are_checked_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="serializer"):
        load_pipeline_file(
            ROOT / "pipelines" / "cascade-local.toml",
            ["transport.backend=websocket", "transport.serializer=morse"],
        )
    with pytest.raises(ValueError, match="contradicts backend 'twilio'"):
        load_pipeline_file(
            ROOT / "pipelines" / "cascade-local.toml",
            ["transport.backend=twilio", "transport.serializer=plain"],
        )


def test_a_port_in_use_is_one_line_and_exit_code_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "pipelines.cli", "talk", "cascade-local-fast"]
        command += ["--transport", "websocket", "--port", str(port)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
