"""Two real ``parley serve`` workers behind Debian's HAProxy, on 127.0.0.1.

Sessions spread over both workers; killing one (SIGKILL, mid-session) closes
only its own sessions, each seen closed by its client; the survivor's sessions
carry on, and new sessions land on the survivor. Every wait is bounded and
every process is stopped at the end. The workers start sessions lazily and no
test sends audio, so no model loads.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import anyio
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipelines.serve.haproxy import HAProxyParams, haproxy_config
from tests.pipelines.serve.health_helpers import get_json, http_get
from tests.pipelines.serve.helpers import RawClient
from tests.pipelines.serve.workers import (
    CHEAP,
    REPO,
    Worker,
    free_port,
    start_worker,
    workers,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        shutil.which("haproxy") is None, reason="needs Debian's haproxy (.ci/run installs it)"
    ),
]

SESSIONS = 6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def balancer(
    tmp_path: Path,
    started: list[Worker],
    check_ms: int = 300,
    talk: dict[str, list[str]] | None = None,
) -> Iterator[int]:
    """HAProxy in front of ``started`` (and ``talk`` servers by path), from the generated
    configuration; yields its port."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    params = HAProxyParams(
        bind=f"127.0.0.1:{port}",
        workers=[f"127.0.0.1:{w.port}" for w in started],
        check_interval_ms=check_ms,
        talk=talk or {},
        stats_socket=str(tmp_path / "haproxy.sock"),
    )
    config.write_text(haproxy_config(params))
    subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True, timeout=30)
    with (tmp_path / "haproxy.log").open("w") as log:
        proxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield port
        finally:
            proxy.kill()
            proxy.wait(timeout=20)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[int, list[Worker]]]:
    """Two workers and HAProxy in front of them: (the balancer's port, the workers)."""
    with workers(2, *CHEAP, "--max-sessions", "8") as started, balancer(tmp_path, started) as port:
        yield port, started


async def _sessions(port: int) -> int:
    return int((await get_json(port, "/health"))[1]["sessions"])


async def _open(stack: AsyncExitStack, url: str) -> tuple[websockets.ClientConnection, RawClient]:
    with anyio.fail_after(60):
        while True:  # HAProxy may not listen yet when the first test connects
            try:
                ws = await stack.enter_async_context(websockets.connect(url, open_timeout=30))
                break
            except OSError:
                await anyio.sleep(0.2)
    client = RawClient(ws)
    assert (await client.recv())["type"] == "session.created"
    return ws, client


async def _alive(client: RawClient) -> None:
    """The session answers: session.update gets session.updated."""
    await client.send(type="session.update", session={"type": "realtime"})
    assert (await client.recv(limit_s=30))["type"] == "session.updated"


async def test_a_killed_worker_costs_only_its_sessions(pool: tuple[int, list[Worker]]) -> None:
    port, (first, second) = pool
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    async with AsyncExitStack() as stack:
        opened = [await _open(stack, url) for _ in range(SESSIONS)]
        on_first, on_second = await _sessions(first.port), await _sessions(second.port)
        assert on_first + on_second == SESSIONS
        assert on_first > 0 and on_second > 0, (on_first, on_second)  # spread over both

        first.kill()  # SIGKILL, mid-session: no close frame, no drain
        assert first.process.wait(timeout=20) != 0

        closed, alive = [], []
        for ws, client in opened:
            try:
                await _alive(client)
                alive.append(client)
            except ConnectionClosed:
                closed.append(ws)
        # Exactly the killed worker's sessions are gone, each closed for its client
        # (HAProxy closes the client side when the worker's sockets die)...
        assert len(closed) == on_first
        for ws in closed:
            with anyio.fail_after(30):
                await ws.wait_closed()
            assert ws.close_code == 1006  # no close frame: the connection just ended
        # ...and the survivor's carry on.
        assert len(alive) == on_second
        assert await _sessions(second.port) == on_second
        for client in alive:
            await _alive(client)

        # New sessions land on the survivor (a connection sent to the dead worker
        # before its check fails is retried on the other).
        for _ in range(3):
            await _alive((await _open(stack, url))[1])
        assert await _sessions(second.port) == on_second + 3


async def test_full_workers_get_no_new_sessions_until_one_frees(tmp_path: Path) -> None:
    with workers(2, *CHEAP, "--max-sessions", "1") as started, balancer(tmp_path, started) as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        async with AsyncExitStack() as stack:
            await _open(stack, url)
            async with AsyncExitStack() as second:
                await _open(second, url)
                assert [await _sessions(w.port) for w in started] == [1, 1]
                # Both full: /ready says 503 on each, so the balancer has nowhere to send it.
                with anyio.fail_after(60):
                    while not all([(await get_json(w.port, "/ready"))[0] == 503 for w in started]):
                        await anyio.sleep(0.1)
                with pytest.raises(InvalidStatus) as refused:
                    async with websockets.connect(url, open_timeout=30):
                        pass
                assert refused.value.response.status_code == 503
            # One session ended: once its worker is ready again, a new session lands there.
            with anyio.fail_after(60):
                while True:
                    try:
                        await _alive((await _open(stack, url))[1])
                        break
                    except InvalidStatus:
                        await anyio.sleep(0.3)
            assert [await _sessions(w.port) for w in started] == [1, 1]


def talk_args(port: int) -> list[str]:
    """The talk server's options: the plain WebSocket transport on ``port``."""
    return ["--transport", "websocket", "--port", str(port)]


@contextmanager
def talk_server() -> Iterator[int]:
    """``parley talk cascade-local --transport websocket`` on a free port (no model loads
    until a conversation starts); yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "talk", "cascade-local", *talk_args(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.kill()
        process.wait(timeout=20)


async def _status(port: int, path: str) -> tuple[int, str]:
    with anyio.fail_after(60):
        while True:
            try:
                status, _, body = await http_get(port, path)
                return status, body
            except OSError:
                await anyio.sleep(0.2)


async def test_the_talk_transport_shares_the_balancer(tmp_path: Path) -> None:
    with (
        workers(1, *CHEAP) as started,
        talk_server() as talk_port,
        balancer(tmp_path, started, talk={"/ws": [f"127.0.0.1:{talk_port}"]}) as port,
    ):
        with anyio.fail_after(60):  # until HAProxy's check has seen the talk server answer
            while (await _status(port, "/ws"))[0] != 426:
                await anyio.sleep(0.2)
        status, body = await _status(port, "/ws")
        assert "/ws is a WebSocket endpoint" in body  # the talk server's own answer
        status, body = await _status(port, "/health")
        assert status == 200 and json.loads(body)["max_sessions"] == 8  # a serve worker's
        async with AsyncExitStack() as stack:
            await _alive((await _open(stack, f"ws://127.0.0.1:{port}/v1/realtime"))[1])
            assert await _sessions(started[0].port) == 1


async def _checked(sock: Path, server: str) -> None:
    """Wait until HAProxy has checked ``server`` and found it ready (``show stat``)."""
    with anyio.fail_after(60):
        while True:
            try:
                stream = await anyio.connect_unix(str(sock))
                async with stream:
                    await stream.send(b"show stat\n")
                    data = b""
                    try:
                        while True:
                            data += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        pass
            except OSError:
                data = b""
            rows = list(csv.reader(io.StringIO(data.decode().lstrip("# "))))
            if rows:
                header = rows[0]
                for row in rows[1:]:
                    stat = dict(zip(header, row, strict=False))
                    if stat.get("svname") == server and stat.get("check_status") == "L7OK":
                        return
            await anyio.sleep(0.2)


async def test_a_worker_that_filled_between_checks_passes_the_session_on(tmp_path: Path) -> None:
    # Checks every 60 s: once HAProxy has found the first worker ready, it fills up
    # (a client connects to it directly) and HAProxy does not know. That worker
    # answers the next session 503; HAProxy retries it on the other.
    with workers(1, *CHEAP, "--max-sessions", "8") as (roomy,):
        small = start_worker(*CHEAP, "--max-sessions", "1")
        try:
            with balancer(tmp_path, [small, roomy], check_ms=60_000) as port:
                await _checked(tmp_path / "haproxy.sock", "serve1")
                async with AsyncExitStack() as stack:
                    await _open(stack, f"ws://127.0.0.1:{small.port}/v1/realtime")  # direct
                    assert (await get_json(small.port, "/ready"))[0] == 503
                    url = f"ws://127.0.0.1:{port}/v1/realtime"
                    for _ in range(2):
                        await _alive((await _open(stack, url))[1])
                    assert await _sessions(roomy.port) == 2
                    assert await _sessions(small.port) == 1
        finally:
            small.stop()
