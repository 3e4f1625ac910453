"""The stage accounting over a live transport, on a scripted timeline.

The client says a turn; the server hears its end ``inbound`` ms later (an RTP
timestamp's arrival), runs the cascade, writes its first audible sample, and the
client receives it ``outbound`` ms later. The measurement must give each stage
its scripted share, a ``transport`` stage of ``inbound + outbound``, and no gap.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.latency.measure import measure_conversation
from benchmarks.latency.webrtc import heard_records, merge_records
from framework.frames import InterruptionFrame
from tests.benchmarks.latency.scripted import MS, Script

SERVER = "webrtc.abc123.output"
CLIENT = "client.input"


def _webrtc_turn(inbound: float, outbound: float) -> tuple[list[dict[str, Any]], float]:
    """One turn over WebRTC; returns the merged records and the scripted v2v (ms)."""
    s = Script()
    s.event(CLIENT, "scenario_start", 0, conversation="c")
    speech = s.item(0, 1000, 2300)
    assert speech is not None
    speech_start, speech_end = speech
    heard = speech_end + inbound
    decided = heard + 250
    s.user_turn(speech_start + inbound, heard - 30, decided)
    server_first = s.cascade_reply(
        decided, stt=30, ttft=100, clause=70, synth=120, output=2, lead=0, audio=False
    )
    # the server's output transport, as a run records it (renamed by merge_records)
    s.event(SERVER, "bot_first_audio", server_first, reply=1)
    s.event(SERVER, "server_bot_first_audible", server_first + 40, reply=1)
    s.event(SERVER, "bot_audio_stopped", server_first + 1500, interrupted=False, played_s=1.5)
    # what the client heard
    client_first = server_first + 40 + outbound
    s.event(CLIENT, "bot_started_speaking", client_first)
    s.event(CLIENT, "bot_first_audio", client_first, reply=1)
    s.event(CLIENT, "bot_first_audible", client_first, reply=1)
    s.event(CLIENT, "bot_audio_stopped", client_first + 1460, played_s=1.46)
    s.end(client_first + 3000)
    records = merge_records(s.log.records, "client")
    # the chunk holding the speech end started 7 ms before it, and went out as RTP time 4800
    chunk_start = s.ns(speech_end - 7)
    sent = {3840: chunk_start - 20 * MS, 4800: chunk_start}
    arrivals = {
        3840: chunk_start + round(inbound * MS),
        4800: chunk_start + round((20 + inbound) * MS),
    }
    items = [r for r in records if r["event"] == "scenario_item"]
    records += heard_records(items, sent, arrivals)
    return records, client_first - speech_end


def test_transport_stage_is_the_network_path_and_the_stages_reconcile() -> None:
    records, v2v = _webrtc_turn(inbound=37, outbound=55)
    assert {r["event"] for r in records if r["processor"] == SERVER} >= {
        "server_bot_first_audio",
        "server_bot_audio_stopped",
    }
    [turn] = measure_conversation(records, "cascade").turns
    assert turn.v2v_s == pytest.approx(v2v / 1000, abs=1e-9)
    assert turn.stages == pytest.approx(
        {
            "end_of_turn": 0.250,
            "stt_final": 0.030,
            "llm_ttft": 0.100,
            "tts_ttfa": 0.190,
            "output": 0.042,  # the server's pacing and the reply's leading silence
            "transport": 0.092,
        },
        abs=1e-9,
    )
    assert turn.substages["transport_in"] == pytest.approx(0.037, abs=1e-9)
    assert turn.substages["transport_out"] == pytest.approx(0.055, abs=1e-9)
    assert turn.gap_s == pytest.approx(0.0, abs=1e-9)
    assert turn.stage_sum_s == pytest.approx(turn.v2v_s, abs=1e-9)
    assert turn.reply_audio_s == pytest.approx(1.46)


def test_without_the_heard_link_there_is_no_transport_stage() -> None:
    records, _ = _webrtc_turn(inbound=20, outbound=30)
    unlinked = [r for r in records if r["event"] != "speech_end_heard"]
    [turn] = measure_conversation(unlinked, "cascade").turns
    assert "transport" not in turn.stages
    # the network path is then folded into end of turn and output, and still adds up
    assert turn.gap_s == pytest.approx(0.0, abs=1e-9)
    assert turn.stages["end_of_turn"] == pytest.approx(0.270, abs=1e-9)


def test_a_speech_end_whose_packet_never_arrived_gets_no_link() -> None:
    s = Script()
    speech = s.item(0, 1000, 2300)
    assert speech is not None
    items = [r for r in s.log.records if r["event"] == "scenario_item"]
    chunk_start = s.ns(speech[1] - 5)
    assert heard_records(items, {960: chunk_start}, {}) == []
    [link] = heard_records(items, {960: chunk_start}, {960: chunk_start + 45 * MS})
    assert link["t_ns"] - link["sent_ns"] == 25 * MS


def test_a_barge_in_ends_at_the_first_client_stop_after_the_server_cut() -> None:
    s = Script()
    s.event(CLIENT, "scenario_start", 0, conversation="c")
    s.item(0, 1000, 2300)
    s.event(CLIENT, "bot_started_speaking", 4000)
    s.event(CLIENT, "bot_first_audio", 4000, reply=1)
    s.event(CLIENT, "bot_first_audible", 4000, reply=1)
    speech = s.item(1, 5000, 2000, trigger="during_reply")
    assert speech is not None
    start = speech[0]
    # a pause between two sentences reads as a stop on the client before the cut
    s.event(CLIENT, "bot_audio_stopped", start + 100, played_s=1.3)
    s.event(CLIENT, "bot_started_speaking", start + 150)
    s.frame("vad", InterruptionFrame(), start + 300)
    s.event(SERVER, "bot_audio_stopped", start + 320, interrupted=True, played_s=1.6)
    s.event(CLIENT, "bot_audio_stopped", start + 410, played_s=0.4)
    s.end(start + 4000)
    records = merge_records(s.log.records, "client")
    turns = measure_conversation(records, "cascade").turns
    barge = turns[1]
    assert barge.bot_speaking_at_start
    assert barge.barge_in_s == pytest.approx(0.410, abs=1e-9)
    assert barge.barge_detect_s == pytest.approx(0.300, abs=1e-9)
    assert "the bot finished its reply before the barge-in took effect" not in barge.notes
