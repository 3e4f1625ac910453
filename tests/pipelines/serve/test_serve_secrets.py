"""No credential in any log: ``parley -v serve`` at DEBUG, right and wrong tokens, all logs grepped.

The server runs as the real command in a subprocess (its models never load:
``eager_start=false`` and no audio is sent); every line it writes is captured.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from benchmarks.serve_process import stop_process
from pipelines.serve.redact import REDACTED, redact, redacting

REPO = Path(__file__).resolve().parents[3]
TOKEN = "tok-8f3a9c2e71d4b6"
GUESSES = ("guess-hdr-51ab77", "guess-proto-9c0e12", "guess-basic-6d2f00", "guess-query-33aa01")


class _Server:
    """``parley -v serve`` in a subprocess; its stdout and stderr are collected."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "pipelines.cli", "-v", "serve", "--port", "0"]
        command += ["--option", "eager_start=false", *args]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output: list[str] = []
        self.port = 0
        ready = threading.Event()

        def read(stream: object, is_stdout: bool) -> None:
            for line in stream:  # type: ignore[attr-defined]
                self.output.append(line)
                if is_stdout and "on ws://" in line:
                    self.port = int(line.split("on ws://", 1)[1].split("/")[0].rsplit(":", 1)[1])
                    ready.set()

        self.readers = [
            threading.Thread(target=read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        if not ready.wait(120):
            self.stop()
            raise AssertionError("the server did not start:\n" + "".join(self.output))

    def stop(self) -> str:
        """Stop the server (SIGINT) and return everything it wrote."""
        stop_process(self.process)
        for reader in self.readers:
            reader.join(10)
        return "".join(self.output)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


async def _connect(port: int, *, headers: dict[str, str], protocols: list[str], query: str) -> bool:
    """True if the server accepted the connection (its first event is session.created)."""
    url = f"ws://127.0.0.1:{port}/v1/realtime{query}"
    try:
        async with websockets.connect(
            url,
            additional_headers=headers,
            subprotocols=protocols or None,  # type: ignore[arg-type]
        ) as ws:
            with anyio.fail_after(30):
                return '"session.created"' in str(await ws.recv())
    except InvalidStatus as exc:
        if exc.response.status_code != 401:
            raise
        return False


async def _knock(port: int, token: str) -> None:
    """The right token in both forms, then the wrong guesses in every form."""
    bearer = {"Authorization": f"Bearer {token}"}
    assert await _connect(port, headers=bearer, protocols=[], query="")
    assert await _connect(
        port, headers={}, protocols=["realtime", f"openai-insecure-api-key.{token}"], query=""
    )
    hdr, proto, basic, query = GUESSES
    for headers, protocols, q in (
        ({"Authorization": f"Bearer {hdr}"}, [], ""),
        ({}, ["realtime", f"openai-insecure-api-key.{proto}"], ""),
        ({"Authorization": f"Basic {basic}"}, [], ""),
        ({}, [], f"?api_key={query}&model=gpt-realtime"),
    ):
        assert not await _connect(port, headers=headers, protocols=protocols, query=q)


def _assert_clean(logs: str, token: str) -> None:
    # The DEBUG handshake logs were written (so the grep below means something) ...
    assert "websockets.server" in logs and "Authorization: Bearer" in logs
    assert "Sec-WebSocket-Protocol" in logs
    # ... and no credential is in them: each was replaced.
    for secret in (token, *GUESSES):
        assert secret not in logs, f"{secret} leaked:\n" + "\n".join(
            line for line in logs.splitlines() if secret in line
        )
    assert REDACTED in logs


def test_no_token_in_debug_logs_with_a_token_file(token_file: Path) -> None:
    server = _Server("--token-file", str(token_file))
    try:
        anyio.run(_knock, server.port, TOKEN)
    finally:
        logs = server.stop()
    _assert_clean(logs, TOKEN)


def test_token_from_the_environment_is_required_and_kept_out_of_ps_and_logs() -> None:
    server = _Server(env={"PARLEY_SERVE_TOKEN": TOKEN})
    try:
        with open(f"/proc/{server.process.pid}/cmdline", "rb") as f:
            assert TOKEN.encode() not in f.read()
        anyio.run(_knock, server.port, TOKEN)
    finally:
        logs = server.stop()
    _assert_clean(logs, TOKEN)


def test_every_record_is_redacted_whatever_its_logger_and_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    other = logging.getLogger("some.library.deep")
    with redacting(["plain-secret-77"]):
        other.debug("headers: %s", {"Authorization": "Bearer abc.def-123"})
        other.info("offered %r", "openai-insecure-api-key.k3y-value")
        other.warning("the token plain-secret-77 came back")
        try:
            raise ValueError("bad key sk-proj-0123456789abcdef")
        except ValueError:
            other.exception("failed with Bearer zzz-top-secret")
    text = caplog.text
    for secret in ("abc.def-123", "k3y-value", "plain-secret-77", "0123456789abcdef", "zzz-top"):
        assert secret not in text
    assert text.count(REDACTED) >= 5


def test_redact_keeps_ordinary_text() -> None:
    line = "session sess_1: connected (model gpt-realtime), 3 items"
    assert redact(line) == line
    assert redact("< Authorization: Basic dXNlcjpwYXNz") == f"< Authorization: Basic {REDACTED}"
    assert redact("GET /v1/realtime?model=x&api_key=k1&y=2") == (
        f"GET /v1/realtime?model=x&api_key={REDACTED}&y=2"
    )


def test_masked_values_stay_and_the_factory_is_put_back() -> None:
    assert redact("> Authorization: Bearer ***") == "> Authorization: Bearer ***"
    assert redact("Authorization: abc123") == f"Authorization: {REDACTED}"
    before = logging.getLogRecordFactory()
    with redacting(["outer-secret"]):
        with redacting(["inner-secret"]):
            assert logging.getLogRecordFactory() is not before
        assert redact("inner-secret outer-secret") == f"inner-secret {REDACTED}"
    assert logging.getLogRecordFactory() is before
    assert redact("outer-secret") == "outer-secret"
