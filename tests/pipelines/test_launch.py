"""The ``parley serve`` child process a ``[serve]`` table starts."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import anyio
import pytest

from pipelines.cli import main
from pipelines.config import ServeConfig
from pipelines.launch import server_command, start_server
from pipelines.serve.app import TOKEN_ENV


async def _status(host: str, port: int, path: str) -> bytes:
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        with anyio.fail_after(10):
            return (await stream.receive()).split(b"\r\n", 1)[0]


@pytest.mark.anyio
async def test_the_child_server_does_not_inherit_the_serve_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "a-token-for-another-server")
    serve = ServeConfig(options=["eager_start=false"], startup_timeout_s=120)
    async with start_server(serve) as url:
        where = urlsplit(url)
        assert where.hostname is not None and where.port is not None
        status = await _status(where.hostname, where.port, "/v1/realtime")
    # Not a WebSocket handshake, so not 101; with the token inherited it would be 401.
    assert b"401" not in status, status
    assert status.startswith(b"HTTP/1.1 4"), status


def test_the_child_server_is_verbose_when_this_process_logs_debug_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve = ServeConfig(pipeline="cascade-local", set=["llm.n_threads=1"])
    caplog.set_level(logging.WARNING)  # the root logger's, restored after the test
    quiet = server_command(serve, 8123)
    assert "--verbose" not in quiet
    assert quiet[-6:] == ["--host", "127.0.0.1", "--port", "8123", "--set", "llm.n_threads=1"]
    caplog.set_level(logging.DEBUG)
    verbose = server_command(serve, 8123)
    assert verbose.index("--verbose") < verbose.index("serve")
    assert [a for a in verbose if a != "--verbose"] == quiet


def test_verbose_comes_before_a_command_that_parses_its_own_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `parley -v bench ...`: bench is a registered command with its own parser.
    levels: list[int] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: levels.append(kw["level"]))
    with pytest.raises(SystemExit) as stopped:
        main(["-v", "bench", "--help"])
    assert stopped.value.code == 0
    assert "usage: parley bench" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert levels == [logging.DEBUG, logging.WARNING]
