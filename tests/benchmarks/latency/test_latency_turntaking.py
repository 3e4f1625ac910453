"""Turn-taking measures on scripted timelines: talk-over, false ends, lost words, backchannels.

Every record goes through a real EventLog on a controlled clock (see scripted.py),
so each count below follows from the scripted events alone; no model runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.latency.measure import measure_conversation
from benchmarks.latency.records import ConversationResult
from benchmarks.latency.report import collect, kind_rows, markdown_report, summary_table
from benchmarks.latency.turntaking import align, align_ops, context_user_messages, overlap_ns
from framework.frames import (
    InterruptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from tests.benchmarks.latency.scripted import Script

HESITATION = "I would like to order a large pizza with mushrooms and olives"


def _vad_turn(s: Script, start_ms: float, end_ms: float, decided_ms: float, text: str) -> None:
    """A VAD turn (start, stop decided later) and its final transcript."""
    s.frame("vad", InterruptionFrame(), start_ms + 200)
    s.frame("vad", UserStartedSpeakingFrame(speech_start_ns=s.ns(start_ms)), start_ms + 200)
    s.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=s.ns(end_ms)), decided_ms)
    s.frame("stt.whisper", TranscriptionFrame(text=text), decided_ms + 20)


def _split_hesitation(*context: str) -> ConversationResult:
    """A 6 s utterance with a pause at 1.5-2.3 s that the VAD took for the end of the turn.

    The bot answered the first part (700 ms of it played inside the utterance) and
    was cut when the user went on; the second part was answered after the end.
    """
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 6500, speech=(300, 6000), kind="hesitation", transcript=HESITATION)  # type: ignore[misc]
    _vad_turn(s, ss, ss + 1200, ss + 1600, "I would like to order")
    s.bot_audio(ss + 2000, ss + 2000, ss + 2700, interrupted=True)
    _vad_turn(s, ss + 2000, se, se + 400, "a large pizza with mushrooms and olives")
    s.bot_audio(se + 700, se + 740, se + 2000)
    s.context(se + 3000, *context)
    s.end(se + 3000)
    return measure_conversation(s.log.records, "cascade")


def test_a_split_hesitation_counts_a_false_end_a_talk_over_and_the_lost_words() -> None:
    result = _split_hesitation("a large pizza with mushrooms and olives")
    (turn,) = result.turns
    assert turn.kind == "hesitation"
    assert turn.vad_turns == 2  # a split turn
    assert turn.false_ends == 1  # the first stop was decided while the user went on
    assert turn.talk_over_s == pytest.approx(0.700, abs=1e-9)
    assert turn.context_words == 12
    # "I would like to order" was transcribed but never reached the context
    assert turn.context_lost == 5
    assert turn.context_missing == 5
    assert turn.v2v_s == pytest.approx(0.700, abs=1e-9)  # the reply after the true end


def test_nothing_is_lost_when_the_context_holds_the_whole_utterance() -> None:
    result = _split_hesitation("I would like to order", "a large pizza with mushrooms and olives")
    (turn,) = result.turns
    assert turn.context_lost == 0 and turn.context_missing == 0
    assert turn.false_ends == 1  # still a false end and a talk-over: they are separate measures


def _one_turn(said: str, final: str, pause_transcript: str | None = None) -> Any:
    """One answered turn: ``said``, transcribed at the end as ``final`` (and at a pause
    as ``pause_transcript``), with ``final`` in the context."""
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 5000, speech=(300, 4500), transcript=said)  # type: ignore[misc]
    if pause_transcript is not None:
        s.frame("stt.whisper", TranscriptionFrame(text=pause_transcript), ss + 1500)
    _vad_turn(s, ss, se, se + 300, final)
    s.bot_audio(se + 600, se + 600, se + 1600)
    s.context(se + 2000, final)
    s.end(se + 2000)
    (turn,) = measure_conversation(s.log.records, "cascade").turns
    return turn


def test_a_recognition_error_is_missing_from_the_context_but_not_lost() -> None:
    # the STT heard "melons" for "olives": the context cannot hold the word, but the
    # turn-taking dropped nothing
    turn = _one_turn("mushrooms and olives", "mushrooms and melons")
    assert (turn.context_words, turn.context_missing, turn.context_lost) == (3, 1, 0)
    assert turn.false_ends == 0 and turn.talk_over_s == 0.0


def test_a_word_a_later_pass_heard_otherwise_is_missing_but_not_lost() -> None:
    # The pause's transcript heard "a tent", the final pass over the whole turn "the
    # tent": "a" is in a transcript and not in the context, but "the" stands in its place.
    turn = _one_turn(
        "I am packing a tent and two sleeping bags",
        "I am packing the tent and two sleeping bags",
        pause_transcript="I am packing a tent",
    )
    assert (turn.context_words, turn.context_missing, turn.context_lost) == (9, 1, 0)


def test_align_ops_tells_a_substitution_from_a_deletion() -> None:
    said = ["i", "would", "like", "a", "large", "pizza"]
    ops = align_ops(said, ["i", "like", "the", "large", "pizza"])
    assert ops == ["=", "-", "=", "~", "=", "="]
    assert align(["a", "b"], []) == [False, False]


def test_without_a_context_record_words_lost_are_unknown_not_zero() -> None:
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 3000)  # type: ignore[misc]
    _vad_turn(s, ss, se, se + 300, "hello there")
    s.end(se + 2000)
    (turn,) = measure_conversation(s.log.records, "cascade").turns
    assert turn.context_words is None and turn.context_lost is None


def _backchannel_conversation(cut: bool, *, paused: bool = False) -> ConversationResult:
    """A question, a long reply, an "uh-huh" 1 s into it; the bot is cut or talks through.

    ``paused``: the bot went quiet at the onset and the interruption came after that.
    """
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 2500, transcript="tell me a story")  # type: ignore[misc]
    _vad_turn(s, ss, se, se + 300, "tell me a story")
    reply = se + 600
    start = reply + 1000
    bs, _be = s.item(  # type: ignore[misc]
        1,
        start,
        900,
        speech=(300, 700),
        kind="backchannel",
        trigger="during_reply",
        transcript="uh-huh",
        reply_expected=False,
    )
    if cut and paused:
        s.bot_audio(reply, reply, bs + 130, interrupted=True)
        s.frame("realtime", InterruptionFrame(), bs + 350)
    elif cut:
        s.bot_audio(reply, reply, bs + 250, interrupted=True)
        s.frame("vad", InterruptionFrame(), bs + 200)
    else:
        s.bot_audio(reply, reply, reply + 6000)
    s.context(reply + 7000, "tell me a story")
    s.end(reply + 7000)
    return measure_conversation(s.log.records, "cascade")


@pytest.mark.parametrize("paused", [False, True], ids=["talking", "paused-at-onset"])
def test_a_backchannel_that_stops_the_bot_is_a_false_interruption(paused: bool) -> None:
    result = _backchannel_conversation(cut=True, paused=paused)
    first, backchannel = result.turns
    assert backchannel.kind == "backchannel" and not backchannel.reply_expected
    assert backchannel.bot_stopped is True
    assert backchannel.barge_in_s is None  # not a barge-in: the bot should have gone on
    assert result.false_interruptions == 1
    assert backchannel.false_interruptions == 1
    # the backchannel expects no reply and is not counted among the context's words
    assert backchannel.context_words is None
    assert first.context_missing == 0


def test_a_backchannel_the_bot_talks_through_is_no_interruption() -> None:
    result = _backchannel_conversation(cut=False)
    backchannel = result.turns[1]
    assert backchannel.bot_stopped is False
    assert result.false_interruptions == 0


def _short_barge_in() -> ConversationResult:
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 2500, transcript="tell me a story")  # type: ignore[misc]
    _vad_turn(s, ss, se, se + 300, "tell me a story")
    reply = se + 600
    bs, be = s.item(  # type: ignore[misc]
        1,
        reply + 800,
        2000,
        speech=(300, 1500),
        kind="short_barge_in",
        trigger="during_reply",
        transcript="wait I only want mushrooms",
    )
    s.frame("vad", InterruptionFrame(), bs + 180)
    s.bot_audio(reply, reply, bs + 220, interrupted=True)
    s.frame("vad", UserStartedSpeakingFrame(speech_start_ns=s.ns(bs)), bs + 180)
    s.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=s.ns(be)), be + 300)
    s.frame("stt.whisper", TranscriptionFrame(text="I only want mushrooms"), be + 320)
    s.bot_audio(be + 700, be + 700, be + 1500)
    s.context(be + 2000, "tell me a story", "I only want mushrooms")
    s.end(be + 2000)
    return measure_conversation(s.log.records, "cascade")


def test_a_short_word_barge_in_reports_its_latency_and_the_lost_word() -> None:
    result = _short_barge_in()
    barge = result.turns[1]
    assert barge.barge_in_s == pytest.approx(0.220, abs=1e-9)
    assert barge.barge_detect_s == pytest.approx(0.180, abs=1e-9)
    # "wait" was never transcribed: missing from the context, lost by the STT, not the turn
    assert (barge.context_words, barge.context_missing, barge.context_lost) == (5, 1, 0)
    assert result.false_interruptions == 0


def _results(tmp_path: Path, *conversations: ConversationResult) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [
        {
            "type": "pipeline",
            "pipeline": "scripted",
            "file": "x.toml",
            "sha256": "0" * 64,
            "architecture": "cascade",
            "description": "scripted",
        }
    ]
    for result in conversations:
        lines += [{"type": "turn", "pipeline": "scripted", **t.as_dict()} for t in result.turns]
        lines.append({"type": "conversation", "pipeline": "scripted", **result.as_dict()})
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return collect(jsonl, environment={}, settings={}, complete=True)


def test_the_summary_the_table_and_the_report_group_the_measures_by_kind(tmp_path: Path) -> None:
    results = _results(
        tmp_path,
        _split_hesitation("a large pizza with mushrooms and olives"),
        _backchannel_conversation(cut=True),
        _short_barge_in(),
    )
    summary = results["summary"]["scripted"]
    counts = summary["counts"]
    assert counts["talk_over_turns"] == 1
    assert counts["false_ends"] == 1
    assert counts["split_turns"] == 1
    assert counts["backchannels_stopped_bot"] == 1 and counts["backchannels"] == 1
    assert (counts["context_lost"], counts["context_missing"]) == (5, 6)
    assert counts["barge_ins"] == 1  # the backchannel is not a barge-in
    assert summary["barge_in_short_s"]["p50"] == pytest.approx(0.220, abs=1e-9)
    hesitation = summary["by_kind"]["hesitation"]
    assert (hesitation["talk_over_turns"], hesitation["context_lost"]) == (1, 5)
    assert summary["by_kind"]["backchannel"]["replied"] == 0
    table = {row[0]: row[1] for row in summary_table(results)[1]}
    assert table["user words lost from the context"] == "5 (6) / 25"  # 12 + 4 + 4 + 5 words
    assert table["backchannels that stopped the bot"] == "1 / 1"
    assert table["false ends of turn (ends / turns)"] == "1 / 1"
    assert table["  short-word barge-in"] == "220 / 220 / 220"
    rows = {row[0]: row for row in kind_rows(summary)}
    assert rows["hesitation"][7] == "5 (5) / 12"
    report = markdown_report(results)
    assert "Turn-taking by kind of turn" in report
    assert "| hesitation | 1 | 1 |" in report


def test_align_prefers_matches_and_marks_the_missing_words() -> None:
    assert align(["a", "b", "c"], ["a", "c"]) == [True, False, True]
    assert align(["a", "b"], ["a", "x", "b"]) == [True, True]
    assert align(["a", "b"], []) == [False, False]
    assert align([], ["x"]) == []


def test_context_messages_are_read_from_chat_messages_and_realtime_items() -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "yes"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ]
    assert context_user_messages(chat) == ["hi"]
    assert context_user_messages(items) == ["yes"]
    assert overlap_ns([(0, 10), (20, 30)], 5, 25) == 10


def test_a_silent_stretch_of_bot_audio_is_no_talk_over() -> None:
    s = Script()
    s.start()
    ss, se = s.item(0, 1000, 4000, speech=(300, 3500), kind="hesitation")  # type: ignore[misc]
    _vad_turn(s, ss, ss + 1000, ss + 1400, "hello")
    s.bot_audio(ss + 1500, None, ss + 1520, interrupted=True)  # 20 ms, nothing audible
    _vad_turn(s, ss + 1600, se, se + 400, "there")
    s.bot_audio(se + 700, se + 740, se + 2000)
    s.end(se + 3000)
    (turn,) = measure_conversation(s.log.records, "cascade").turns
    assert turn.talk_over_s == 0.0
    assert turn.false_ends == 1


def test_compare_shows_the_turn_taking_counts_of_both_runs(tmp_path: Path) -> None:
    from benchmarks.latency.compare import compare_rows

    before_dir, after_dir = tmp_path / "a", tmp_path / "b"
    before_dir.mkdir()
    after_dir.mkdir()
    before = _results(before_dir, _split_hesitation("a large pizza with mushrooms and olives"))
    after = _results(after_dir, _split_hesitation(HESITATION))
    rows = {row[1]: row[2:5] for row in compare_rows(before, after)}
    assert rows["hesitation turns: words lost"] == ["5", "0", "-5"]
    assert rows["talk-over turns"] == ["1", "1", "+0"]
