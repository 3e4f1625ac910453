"""A real bench on real-speech patterns: a hesitation turn and a short-word barge-in.

A two-turn Piper corpus (a sentence with two timed pauses, then "Wait, ..." over
the reply) is played in real time through cascade-local. The pipeline's
turn-taking is not judged here (the results are what they are); the test checks
that the pauses are exact in the audio, and that every turn-taking measure is
present, consistent with the events, and the same when measured again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.latency import generate
from benchmarks.latency.cli import main
from benchmarks.latency.corpus import load_corpus
from benchmarks.latency.script import Line
from benchmarks.latency.wer import normalize_words
from processors.recording.events import read_jsonl

pytestmark = [pytest.mark.models, pytest.mark.slow]

SCRIPT = {
    "real": [
        Line("hesitation", "I need three things, | bread, | milk and eggs.", pauses_ms=(600, 800)),
        Line("short_barge_in", "Wait, tell me about Spain instead.", delay_s=0.3),
    ]
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    corpus = generate.builtin_corpus(tmp_path_factory.mktemp("cache"), script=SCRIPT)
    out = tmp_path_factory.mktemp("bench")
    assert main(["cascade-local", "--corpus", str(corpus), "--out", str(out)]) == 0
    return corpus, out, json.loads((out / "results.json").read_text())


def test_the_pauses_are_exact_silence_in_the_generated_audio(
    run: tuple[Path, Path, dict[str, Any]],
) -> None:
    corpus, _out, _results = run
    hesitation = load_corpus(corpus).conversations[0].items[0]
    assert hesitation.kind == "hesitation"
    assert hesitation.transcript == "I need three things, bread, milk and eggs."
    samples = np.frombuffer(hesitation.pcm, dtype=np.int16)
    rate = hesitation.sample_rate
    lengths = []
    for start, end in hesitation.pauses:
        a, b = round(start * rate), round(end * rate)
        assert not samples[a + 1 : b - 1].any()  # nothing but silence inside
        assert np.abs(samples[a - 160 : a]).max() > 300  # speech right before and after
        assert np.abs(samples[b : b + 160]).max() > 300
        lengths.append(end - start)
    assert lengths == pytest.approx([0.6, 0.8], abs=1e-3)
    words = [w.word for w in hesitation.words]
    assert words == ["I", "need", "three", "things", "bread", "milk", "and", "eggs"]
    # word times follow the pauses: "bread" starts after the first one
    assert hesitation.words[4].start_s >= hesitation.pauses[0][1] - 0.02


def test_every_turn_taking_measure_is_reported_and_consistent(
    run: tuple[Path, Path, dict[str, Any]],
) -> None:
    _corpus, out, results = run
    turns = [t for t in results["turns"] if t["speech_end_s"] is not None]
    assert [t["kind"] for t in turns] == ["hesitation", "short_barge_in"]
    (conversation,) = results["conversations"]
    events = read_jsonl(out / conversation["events_file"])
    (context,) = [r for r in events if r["event"] == "context_final"]
    assert context["user_messages"], "the cascade answered, so the context has user messages"
    for turn in turns:
        assert turn["context_words"] == len(normalize_words(turn["transcript"]))
        assert 0 <= turn["context_lost"] <= turn["context_missing"] <= turn["context_words"]
        assert turn["false_ends"] >= 0 and turn["talk_over_s"] >= 0
        assert turn["false_ends"] <= turn["vad_turns"]
    counts = results["summary"]["cascade-local"]["counts"]
    assert counts["context_words"] == sum(t["context_words"] for t in turns)
    by_kind = results["summary"]["cascade-local"]["by_kind"]
    assert set(by_kind) == {"hesitation", "short_barge_in"}
    report = (out / "report.md").read_text()
    assert "Turn-taking by kind of turn" in report
    assert "user words lost from the context" in report


def test_measuring_again_from_the_events_gives_the_same_turn_taking(
    run: tuple[Path, Path, dict[str, Any]],
) -> None:
    _corpus, out, results = run
    keys = ("false_ends", "talk_over_s", "context_words", "context_missing", "context_lost")
    before = [{k: t[k] for k in keys} for t in results["turns"]]
    assert main(["report", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [{k: t[k] for k in keys} for t in again["turns"]] == before
