"""One spoken turn through the real offline cascade: its metrics and its trace.

The user's question (Piper's joe voice) is streamed in real time under
``server_vad``; the worker's ``/metrics`` and the in-memory trace must then
hold that turn: voice-to-voice, each stage's latency, the response's status.
"""

from __future__ import annotations

import anyio
import pytest
import websockets

from tests.pipelines.serve.health_helpers import http_get, memory_tracing, metric_value, serving
from tests.pipelines.serve.helpers import RawClient, cascade_config, speech_24k

pytestmark = [pytest.mark.anyio, pytest.mark.models]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_spoken_turn_shows_in_metrics_and_trace() -> None:
    tracing, exporter = memory_tracing()
    speech = speech_24k("What is the capital of France?")
    config = cascade_config("llm.max_tokens=40")
    vad = {"type": "server_vad", "silence_duration_ms": 400}
    async with serving(config, tracing=tracing) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
            client = RawClient(ws)
            await client.until("session.created", limit_s=180)
            audio = {"input": {"turn_detection": vad}}
            await client.send(type="session.update", session={"type": "realtime", "audio": audio})
            await client.until("session.updated")
            # real time: 100 ms of audio every 100 ms
            await client.append(bytes(48 * 300) + speech + bytes(48 * 1500), pace=0.1)
            done = (await client.until("response.done", limit_s=180))[-1]
            assert done["response"]["status"] == "completed"
            _, _, text = await http_get(port, "/metrics")
        for _ in range(100):  # the session's span ends once its handler has returned
            if any(s.name == "parley.session" for s in exporter.get_finished_spans()):
                break
            await anyio.sleep(0.1)

    assert metric_value(text, "parley_serve_turns_total") == 1
    assert metric_value(text, "parley_serve_responses_total", 'status="completed"') == 1
    assert metric_value(text, "parley_serve_voice_to_voice_seconds_count") == 1
    v2v = metric_value(text, "parley_serve_voice_to_voice_seconds_sum")
    assert v2v > 0
    for stage in ("turn", "stt", "llm", "tts"):
        assert metric_value(text, "parley_serve_stage_seconds_count", f'stage="{stage}"') >= 1
    # The end-of-turn wait is counted in audio (silence heard after the speech's end),
    # voice-to-voice in wall time from the arrival of the append holding the speech's
    # end. Audio comes 100 ms at a time, so the silence in that append is heard at once:
    # the wait can exceed voice-to-voice by less than one append, never by more.
    turn_s = metric_value(text, "parley_serve_stage_seconds_sum", 'stage="turn"')
    assert 0 < turn_s < v2v + 0.1

    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "parley.session"]
    (turn,) = [s for s in spans if s.name == "parley.turn"]
    assert turn.parent is not None and turn.parent.span_id == root.context.span_id
    assert turn.attributes["parley.turn.opened_by"] == "speech"
    assert turn.attributes["parley.turn.outcome"] == "completed"
    assert turn.attributes["parley.voice_to_voice_s"] == pytest.approx(v2v, abs=1e-3)
    stages = {s.name for s in spans if s.parent and s.parent.span_id == turn.context.span_id}
    assert {"parley.stage.stt", "parley.stage.llm", "parley.stage.tts"} <= stages
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    assert all(s.start_time <= s.end_time for s in spans)
