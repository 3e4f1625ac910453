"""A real bench over WebRTC: a tiny Piper corpus spoken by an aiortc client to cascade-local.

One conversation of two turns (a normal one and a barge-in) through the CLI with
``--transport file,webrtc``: the same pipeline over the file transport and over
a live WebRTC server on 127.0.0.1, in one run. Both must reconcile; the WebRTC
one has a transport stage. Timings are bounded loosely, never tightly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.latency import generate
from benchmarks.latency.cli import main
from processors.recording.events import read_jsonl
from tests.benchmarks.latency.test_latency_quick_run import TINY

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    corpus = generate.builtin_corpus(tmp_path_factory.mktemp("cache"), script=TINY)
    out = tmp_path_factory.mktemp("bench")
    argv = ["cascade-local", "--corpus", str(corpus), "--out", str(out), "--no-plots"]
    code = main([*argv, "--transport", "file,webrtc"])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_file_and_webrtc_side_by_side_both_reconcile(run: tuple[Path, dict[str, Any]]) -> None:
    out, results = run
    assert results["complete"]
    assert [p["pipeline"] for p in results["pipelines"]] == [
        "cascade-local",
        "cascade-local@webrtc",
    ]
    assert results["settings"]["transports"] == ["file", "webrtc"]
    for name, extra in (("cascade-local", set()), ("cascade-local@webrtc", {"transport"})):
        turns = [t for t in results["turns"] if t["pipeline"] == name]
        assert len(turns) == 2, name
        for turn in turns:
            assert turn["replied"], turn
            assert 0.1 < turn["v2v_s"] < 15
            assert abs(turn["gap_s"]) <= 0.005, turn  # the stages cover the whole latency
            expected = {"end_of_turn", "stt_final", "llm_ttft", "tts_ttfa", "output"} | extra
            assert set(turn["stages"]) == expected, turn
            assert turn["wer"] is not None and turn["wer"] <= 0.5, turn
            # the server's session records its final context: words lost are measured
            assert turn["context_words"] is not None, turn
        if extra:
            for turn in turns:
                # a packet cannot arrive before it was sent, nor take seconds on 127.0.0.1
                assert 0 < turn["substages"]["transport_in"] < 2, turn
                assert 0 < turn["substages"]["transport_out"] < 2, turn
            barge = turns[1]
            assert barge["barge_in_s"] is not None and 0 < barge["barge_in_s"] < 5, barge
    (conversation,) = [c for c in results["conversations"] if c["transport"] == "webrtc"]
    assert conversation["end"] == "ended" and not conversation["task_errors"]
    events = read_jsonl(out / conversation["events_file"])
    names = {r["event"] for r in events}
    # both sides in one file: the client's view and the server's, told apart
    assert {"bot_first_audio", "server_bot_first_audio", "speech_end_heard"} <= names
    assert "cascade-local@webrtc" in (out / "report.md").read_text()
