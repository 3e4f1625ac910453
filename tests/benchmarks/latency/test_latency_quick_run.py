"""A real bench: the embedded cascade on a tiny Piper corpus, through the CLI.

One conversation of two turns (a normal one and a barge-in), generated with
Piper into a temporary cache (and found in the cache the second time), played
in real time through cascade-local. The JSON must hold sane, reconciled
numbers; timings are only bounded loosely, never asserted tightly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.latency import generate
from benchmarks.latency.cli import main
from benchmarks.latency.corpus import load_corpus
from benchmarks.latency.script import Line

pytestmark = [pytest.mark.models, pytest.mark.slow]

TINY = {
    "tiny": [
        Line("normal", "What is the capital city of France?"),
        Line("barge_in", "Sorry, tell me about Spain instead.", delay_s=0.6),
    ]
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    return generate.builtin_corpus(cache, script=TINY)


@pytest.fixture(scope="module")
def run(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    code = main(["cascade-local", "--corpus", str(corpus_dir), "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_the_corpus_is_generated_once_and_cached(
    corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = load_corpus(corpus_dir)
    (conversation,) = corpus.conversations
    first, barge = conversation.items
    assert first.transcript == "What is the capital city of France?"
    assert 0.2 < first.speech_start_s < first.speech_end_s < first.duration_s  # type: ignore[operator]
    assert barge.trigger == "during_reply" and barge.delay_s == 0.6
    assert [w.word for w in first.words][:2] == ["What", "is"]

    def fail(*args: object) -> None:
        raise AssertionError("the cached corpus was generated again")

    monkeypatch.setattr(generate, "_generate", fail)
    assert generate.builtin_corpus(corpus_dir.parent.parent, script=TINY) == corpus_dir


def test_the_quick_run_gives_reconciled_numbers(run: tuple[Path, dict[str, Any]]) -> None:
    out, results = run
    assert results["complete"]
    (pipeline,) = results["pipelines"]
    assert pipeline["pipeline"] == "cascade-local"
    assert len(pipeline["sha256"]) == 64
    assert results["environment"]["cpu"]
    turns = [t for t in results["turns"] if t["speech_end_s"] is not None]
    assert len(turns) == 2
    for turn in turns:
        assert turn["replied"], turn
        assert 0.1 < turn["v2v_s"] < 10
        assert abs(turn["gap_s"]) <= 0.005  # the stages account for the whole latency
        assert turn["stage_sum_s"] == pytest.approx(turn["v2v_s"], abs=0.005)
        assert set(turn["stages"]) == {"end_of_turn", "stt_final", "llm_ttft", "tts_ttfa", "output"}
        assert turn["heard_s"] >= turn["v2v_s"]
        assert turn["wer"] is not None and turn["wer"] <= 0.5
        assert turn["reply_words"] > 0
    barge = turns[1]
    assert barge["kind"] == "barge_in"
    if barge["bot_speaking_at_start"]:
        assert 0 < barge["barge_in_s"] < 3
    summary = results["summary"]["cascade-local"]
    assert summary["v2v_s"]["n"] >= 1
    assert summary["cost"]["process_cpu_s_per_min"] > 0
    (conversation,) = results["conversations"]
    assert conversation["cpu_s_by_stage"].keys() >= {"stt", "llm", "tts"}
    events = out / conversation["events_file"]
    assert events.is_file() and events.stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| voice-to-voice |" in report and "cascade-local" in report


def test_compare_and_report_again(
    run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, results = run
    assert main(["compare", str(out / "results.json"), str(out / "results.json")]) == 0
    printed = capsys.readouterr().out
    assert "voice-to-voice" in printed and "+0" in printed
    assert main(["report", str(out), "--no-plots"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [t["v2v_s"] for t in again["turns"]] == [t["v2v_s"] for t in results["turns"]]
