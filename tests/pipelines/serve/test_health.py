"""What a balancer asks a worker: /health, /ready, /metrics, and the traces (no model loads).

The servers start pipelines lazily (``eager_start=False``) and no test sends
audio, so these run in seconds. The spoken-turn figures are in
``test_health_models.py``.
"""

from __future__ import annotations

import json

import anyio
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from pipelines.serve.app import _refuse_full
from pipelines.serve.drain import DRAIN_CLOSE_CODE, DRAIN_ERROR_CODE, Drain
from pipelines.serve.health import WorkerLoad
from pipelines.serve.tracing import tracing_from_env
from tests.pipelines.serve.health_helpers import (
    get_json,
    http_get,
    memory_tracing,
    metric_value,
    serving,
)
from tests.pipelines.serve.helpers import RawClient, cascade_config
from tests.pipelines.serve.test_serve_edges import _FakeConnection

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _session(ws: websockets.ClientConnection) -> RawClient:
    client = RawClient(ws)
    assert (await client.recv())["type"] == "session.created"
    return client


async def test_ready_turns_503_when_full_and_health_stays_200() -> None:
    async with serving(cascade_config(), eager_start=False, max_sessions=1) as port:
        status, body = await get_json(port, "/ready")
        assert (status, body) == (
            200,
            {"ready": True, "sessions": 0, "max_sessions": 1, "draining": False},
        )
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        async with websockets.connect(url) as ws:
            await _session(ws)
            status, body = await get_json(port, "/ready")
            assert status == 503
            assert body == {"ready": False, "sessions": 1, "max_sessions": 1, "draining": False}
            assert (await get_json(port, "/health"))[0] == 200
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(url):
                    pass
            assert refused.value.response.status_code == 503
            _, _, text = await http_get(port, "/metrics")
            assert metric_value(text, "parley_serve_refused_total", 'reason="full"') == 1
        for _ in range(100):  # the slot frees once the session has wound down
            status, body = await get_json(port, "/ready")
            if status == 200:
                break
            await anyio.sleep(0.1)
        assert (status, body["sessions"]) == (200, 0)


async def test_metrics_count_sessions_and_errors_by_code() -> None:
    async with serving(cascade_config(), eager_start=False, max_sessions=4) as port:
        status, head, text = await http_get(port, "/metrics")
        assert status == 200 and "text/plain; version=" in head
        assert metric_value(text, "parley_serve_sessions") == 0
        assert metric_value(text, "parley_serve_max_sessions") == 4
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
            client = await _session(ws)
            await client.send(type="no.such.event", event_id="e1")
            error = await client.recv()
            assert error["type"] == "error"
            code = error["error"]["code"]
            _, _, text = await http_get(port, "/metrics")
            assert metric_value(text, "parley_serve_sessions") == 1
            assert metric_value(text, "parley_serve_sessions_started_total") == 1
            assert metric_value(text, "parley_serve_errors_total", f'code="{code}"') == 1
            assert metric_value(text, "parley_serve_draining") == 0


async def test_each_conversation_is_a_trace_with_its_errors() -> None:
    tracing, exporter = memory_tracing()
    async with serving(cascade_config(), tracing=tracing, eager_start=False) as port:
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        ids = []
        for _ in range(2):
            async with websockets.connect(url) as ws:
                client = await _session(ws)
                ids.append(client.events[0]["session"]["id"])
                await client.send(type="no.such.event")
                assert (await client.recv())["type"] == "error"
        for _ in range(100):
            if len(exporter.get_finished_spans()) >= 2:
                break
            await anyio.sleep(0.1)
    roots = [s for s in exporter.get_finished_spans() if s.name == "parley.session"]
    assert sorted(s.attributes["parley.session.id"] for s in roots) == sorted(ids)
    assert roots[0].context.trace_id != roots[1].context.trace_id
    for root in roots:
        assert root.parent is None
        assert [e.name for e in root.events] == ["parley.error"]
        assert root.attributes["parley.turns"] == 0


def test_no_endpoint_or_a_disabled_sdk_means_no_tracing() -> None:
    assert tracing_from_env({}) is None
    assert (
        tracing_from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
        )
        is None
    )
    tracing = tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing is not None
    tracing.shutdown()


class _Session:
    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, message: dict[str, object]) -> None:
        self.sent.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def _draining(timeout_s: float) -> tuple[WorkerLoad, Drain, _Session]:
    """A drain over one running session (not requested yet)."""
    load = WorkerLoad(4)
    load.active = 1
    drain = Drain(load, timeout_s=timeout_s)
    session = _Session()
    drain.sessions.add(session)
    return load, drain, session


async def test_drain_refuses_then_closes_what_outlives_the_timeout() -> None:
    load, drain, session = _draining(0.2)
    drain.request()
    assert not load.accepting
    assert load.readiness()[0] == 503
    assert json.loads(load.readiness()[1])["draining"] is True
    assert "shutting down" in load.refusal()
    with anyio.fail_after(30):
        await drain.run()  # the session never ends by itself: closed at the deadline
    assert session.closed == (DRAIN_CLOSE_CODE, "server shutting down")
    assert session.sent[0]["type"] == "error"
    assert session.sent[0]["error"]["code"] == DRAIN_ERROR_CODE  # type: ignore[index]
    assert drain.closed_by_drain == 1


async def test_a_handshake_that_raced_the_drain_gets_the_drain_close() -> None:
    load, drain, _ = _draining(10)
    drain.request()
    connection = _FakeConnection()
    await _refuse_full(connection, load)
    assert json.loads(connection.sent[0])["error"]["code"] == DRAIN_ERROR_CODE
    assert connection.closed == (DRAIN_CLOSE_CODE, "server shutting down")


async def test_drain_ends_as_soon_as_the_last_session_does() -> None:
    load, drain, session = _draining(3600)
    with anyio.fail_after(30):  # the task group ends when the drain does
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain.run)
            drain.request()
            await anyio.sleep(0.1)
            load.active = 0
            drain.sessions.discard(session)
            drain.notify()
    assert session.closed is None and drain.closed_by_drain == 0
