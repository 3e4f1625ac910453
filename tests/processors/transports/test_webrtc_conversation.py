"""A spoken question over WebRTC gets a spoken answer from the offline cascade.

An aiortc client says a Piper-made question to a talk server running
``cascade-local`` with ``transport.backend = "webrtc"``; the reply that comes
back over the connection is transcribed with Whisper.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework import PipelineRunner
from pipelines.config import load_pipeline_file
from pipelines.factory import build_session
from processors.transports.webrtc.audio import WIRE_RATE
from processors.transports.webrtc.client import WebRTCClient
from tests.pipelines.test_run_cascade import _transcribe_wav
from tests.speech import synthesize_speech

from .webrtc_helpers import ROOT, Census, config_params, loud_seconds, serve, settled_census

pytestmark = [pytest.mark.anyio, pytest.mark.models, pytest.mark.slow]
CASCADE = ROOT / "pipelines" / "cascade-local.toml"


async def test_a_spoken_question_gets_a_spoken_reply_over_webrtc() -> None:
    from processors.stt.whisper import WhisperSTT

    config = load_pipeline_file(CASCADE, ['transport.backend="webrtc"'])
    assert config.stage("transport").backend == "webrtc"
    contexts: list[Any] = []

    async def run_session(transport: Any) -> None:
        session = build_session(config, transport)
        contexts.append(session.context)
        await PipelineRunner(handle_signals=False).run(session.task)

    [question] = synthesize_speech(["What is the capital of France?"])
    async with serve(run_session, config_params(config)) as server:
        baseline = Census.take()
        client = WebRTCClient(server.url)
        await client.connect()
        await client.wait_for_event("ready", timeout_s=120)
        client.say(bytes(16000) + question + bytes(16000), 16000)
        latency = await client.wait_for_event("latency", timeout_s=180)
        await client.wait_for_event("bot_stopped", timeout_s=180)
        start = next(i for i, (t, _) in enumerate(client.received) if t >= latency["t_ms"] * 1e6)
        reply = b"".join(pcm for _, pcm in client.received[start - 10 :])
        events = client.events
        await client.close()
        await server.wait_sessions(0)
        del client  # the census counts peer connections still referenced
        census = await settled_census(baseline)
    transcripts = [e for e in events if e["type"] == "transcript" and e["final"]]
    assert transcripts, "no final transcript reached the page"
    assert "capital of france" in transcripts[0]["text"].lower()
    assert 0 < latency["ms"] < 30_000
    assert [e for e in events if e["type"] == "bot_text"], "no bot words reached the page"
    assert loud_seconds(reply, WIRE_RATE) > 0.5, "the reply that arrived is not speech"
    heard = await _transcribe_wav(WhisperSTT, reply, WIRE_RATE)
    assert len(heard.split()) >= 2, f"the reply transcribes to {heard!r}"
    [context] = contexts
    assert any(m["role"] == "assistant" for m in context.messages)
    assert census == baseline, f"left behind: {census} (before: {baseline})"
