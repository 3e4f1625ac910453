"""SIGTERM drains a real ``parley serve`` process; traces reach a real OTLP receiver.

Each test starts the CLI as a subprocess on a free 127.0.0.1 port; sessions
start lazily and load no model.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipelines.serve.drain import DRAIN_CLOSE_CODE, DRAIN_ERROR_CODE
from tests.pipelines.serve.health_helpers import get_json
from tests.pipelines.serve.helpers import RawClient
from tests.pipelines.serve.workers import CHEAP, workers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _until_ready_status(port: int, status: int) -> dict[str, object]:
    with anyio.fail_after(30):
        while True:
            got, body = await get_json(port, "/ready")
            if got == status:
                return body
            await anyio.sleep(0.1)


async def test_sigterm_refuses_new_sessions_then_closes_the_rest_with_1012() -> None:
    with workers(1, *CHEAP, "--drain-timeout", "4") as (worker,):
        url = f"ws://127.0.0.1:{worker.port}/v1/realtime"
        async with websockets.connect(url) as ws:
            client = RawClient(ws)
            assert (await client.recv())["type"] == "session.created"
            worker.kill(signal.SIGTERM)
            body = await _until_ready_status(worker.port, 503)
            assert body == {"ready": False, "sessions": 1, "max_sessions": 8, "draining": True}
            assert (await get_json(worker.port, "/health"))[0] == 200
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url):
                    pass
            assert refused.value.response.status_code == 503
            # The running session is still served during the drain...
            await client.send(type="session.update", session={"type": "realtime"})
            assert (await client.recv())["type"] == "session.updated"
            # ...until the timeout: an error event, then close code 1012.
            error = await client.recv(limit_s=60)
            assert error["type"] == "error"
            assert error["error"]["code"] == DRAIN_ERROR_CODE
            with anyio.fail_after(60), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == DRAIN_CLOSE_CODE
        assert worker.process.wait(timeout=60) == 0, worker.stderr()


async def test_sigterm_exits_as_soon_as_the_last_session_ends() -> None:
    with workers(1, *CHEAP, "--drain-timeout", "600") as (worker,):
        async with websockets.connect(f"ws://127.0.0.1:{worker.port}/v1/realtime") as ws:
            assert (await RawClient(ws).recv())["type"] == "session.created"
            worker.kill(signal.SIGTERM)
            await _until_ready_status(worker.port, 503)
            assert worker.process.poll() is None  # it waits for the session
        # The client left: the worker exits long before its 600 s drain timeout.
        assert worker.process.wait(timeout=60) == 0, worker.stderr()


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.bodies.append((self.path, self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_traces_go_to_the_configured_otlp_endpoint(
    otlp_receiver: ThreadingHTTPServer,
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    endpoint = f"http://127.0.0.1:{otlp_receiver.server_address[1]}"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "parley-test"}
    with workers(1, *CHEAP, env=env) as (worker,):
        async with websockets.connect(f"ws://127.0.0.1:{worker.port}/v1/realtime") as ws:
            created = await RawClient(ws).recv()
        worker.kill(signal.SIGTERM)  # the drain ends at once; the exporter flushes on exit
        assert worker.process.wait(timeout=60) == 0, worker.stderr()
    spans = []
    for path, body in otlp_receiver.bodies:  # type: ignore[attr-defined]
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "parley-test"
            spans += [s for scope in resource.scope_spans for s in scope.spans]
    sessions = [s for s in spans if s.name == "parley.session"]
    assert len(sessions) == 1
    attributes = {a.key: a.value.string_value for a in sessions[0].attributes}
    assert attributes["parley.session.id"] == created["session"]["id"]
