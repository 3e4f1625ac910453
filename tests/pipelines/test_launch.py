"""The ``parley serve`` child process a ``[serve]`` table starts."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
import pytest

from pipelines.config import ServeConfig
from pipelines.launch import start_server
from pipelines.serve.app import TOKEN_ENV

pytestmark = pytest.mark.anyio


async def _status(host: str, port: int, path: str) -> bytes:
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        with anyio.fail_after(10):
            return (await stream.receive()).split(b"\r\n", 1)[0]


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
