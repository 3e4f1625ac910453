"""Deterministic accounting: scripted stages with known delays give exactly those numbers.

Every record goes through a real EventLog with timestamps on a controlled clock
(see scripted.py); the measurement, the summary and the report table must show
the scripted delays to the nanosecond / millisecond, and reconcile exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.latency.measure import measure_conversation
from benchmarks.latency.report import collect, markdown_report, summary_table
from benchmarks.latency.stats import percentile, summarize
from framework.frames import (
    InterruptionFrame,
    TranscriptionFrame,
    UserPausedSpeakingFrame,
    UserResumedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from tests.benchmarks.latency.scripted import Script


def _cascade_script() -> tuple[Script, list[float]]:
    """Three turns with known stage delays (ms); returns the script and the v2v of each."""
    s = Script()
    s.start()
    v2v = []
    delays = [
        dict(eot=250, stt=30, ttft=100, clause=70, synth=120, output=2, lead=40),
        dict(eot=240, stt=10, ttft=150, clause=50, synth=200, output=1, lead=35),
        dict(eot=260, stt=50, ttft=80, clause=90, synth=100, output=3, lead=45),
    ]
    start = 1000.0
    for i, d in enumerate(delays):
        speech_start, speech_end = s.item(i, start, 2300)  # type: ignore[misc]
        decided = speech_end + d["eot"]
        s.user_turn(speech_start, speech_end - 30, decided)
        first = s.cascade_reply(
            decided,
            stt=d["stt"],
            ttft=d["ttft"],
            clause=d["clause"],
            synth=d["synth"],
            output=d["output"],
            lead=d["lead"],
        )
        v2v.append(first - speech_end)
        start = first + 1500 + 800
    s.end(start)
    return s, v2v


def test_cascade_stages_are_exactly_the_scripted_delays() -> None:
    s, v2v = _cascade_script()
    result = measure_conversation(s.log.records, "cascade")
    turns = result.turns
    assert [t.v2v_s for t in turns] == pytest.approx([v / 1000 for v in v2v], abs=1e-9)
    first = turns[0]
    assert first.stages == pytest.approx(
        {
            "end_of_turn": 0.250,
            "stt_final": 0.030,
            "llm_ttft": 0.100,
            "tts_ttfa": 0.190,
            "output": 0.002,
        },
        abs=1e-9,
    )
    assert first.substages == pytest.approx(
        {"handoff": 0.0, "llm_first_clause": 0.070, "tts_synth": 0.120}, abs=1e-9
    )
    assert first.v2v_s == pytest.approx(0.572, abs=1e-9)
    assert first.heard_s == pytest.approx(0.612, abs=1e-9)
    assert first.lead_silence_s == pytest.approx(0.040, abs=1e-9)
    assert first.gap_s == pytest.approx(0.0, abs=1e-9)
    assert first.stage_sum_s == pytest.approx(first.v2v_s, abs=1e-9)
    assert first.reported["ttfa"] == pytest.approx(0.190, abs=1e-9)
    assert first.wer == 0.0
    assert first.reply_text == "Sure, I can help."
    assert first.reply_words == 4
    assert first.reply_audio_s == pytest.approx(1.5)
    assert turns[1].stages["llm_ttft"] == pytest.approx(0.150, abs=1e-9)
    assert turns[2].substages["tts_synth"] == pytest.approx(0.100, abs=1e-9)
    assert result.false_turns == 0
    assert result.false_interruptions == 0


def test_a_missing_stage_shows_up_as_gap_not_hidden() -> None:
    s = Script()
    s.start()
    speech_start, speech_end = s.item(0, 1000, 2300)  # type: ignore[misc]
    s.user_turn(speech_start, speech_end, speech_end + 250)
    first = s.cascade_reply(
        speech_end + 250,
        stt=30,
        handoff=7,
        ttft=100,
        clause=70,
        synth=120,
        output=2,
        lead=40,
        with_tts_metric=False,
    )
    s.end(first + 3000)
    turn = measure_conversation(s.log.records, "cascade").turns[0]
    assert turn.v2v_s == pytest.approx((first - speech_end) / 1000, abs=1e-9)
    assert set(turn.stages) == {"end_of_turn", "stt_final", "llm_ttft"}
    # the handoff (7 ms), the whole TTS and the output are in the gap, shown
    assert turn.gap_s == pytest.approx(0.007 + 0.190 + 0.002, abs=1e-9)


def test_s2s_stages_barge_in_and_talk_over() -> None:
    s = Script()
    s.start()
    # turn 1: the bot blurts over the user (an early reply), then answers after the end
    speech_start, speech_end = s.item(0, 1000, 2300)  # type: ignore[misc]
    s.user_turn(speech_start, speech_start + 500, speech_start + 700)
    s.bot_audio(speech_start + 900, speech_start + 930, speech_start + 1100, interrupted=True)
    s.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=s.ns(speech_end)), speech_end + 300)
    s.metric("realtime.openai", "ttfa", 0.5, speech_end + 800)
    reply_at = speech_end + 801
    s.bot_audio(reply_at, reply_at + 30, reply_at + 3000)
    # turn 2: a barge-in 1 s into the bot's next reply
    barge = s.item(1, reply_at + 1000, 2000, kind="barge_in", trigger="during_reply")
    assert barge is not None
    s.frame("vad", InterruptionFrame(), barge[0] + 320)
    s.bot_cut(barge[0] + 335)
    s.end(reply_at + 8000)
    result = measure_conversation(s.log.records, "s2s")
    first, second = result.turns
    assert first.talk_overs == 1
    assert not first.early
    assert first.v2v_s == pytest.approx(0.801, abs=1e-9)
    assert first.stages == pytest.approx(
        {"end_of_turn": 0.300, "s2s_ttfa": 0.500, "output": 0.001}, abs=1e-9
    )
    assert first.gap_s == pytest.approx(0.0, abs=1e-9)
    assert second.bot_speaking_at_start
    assert second.barge_in_s == pytest.approx(0.335, abs=1e-9)
    assert second.barge_detect_s == pytest.approx(0.320, abs=1e-9)
    assert second.barge_stop_s == pytest.approx(0.015, abs=1e-9)


def test_silent_spurious_reply_and_false_events() -> None:
    """A reply nobody can hear is no reply; starts without user speech are false turns."""
    s = Script()
    s.start()
    speech_start, speech_end = s.item(0, 1000, 2300)  # type: ignore[misc]
    s.user_turn(speech_start, speech_end, speech_end + 250)
    s.bot_audio(speech_end + 100, None, speech_end + 120)  # a silent 20 ms chunk
    s.bot_audio(speech_end + 600, speech_end + 640, speech_end + 2600)
    silence_start = speech_end + 3500
    s.item(1, silence_start, 3000, speech=None, kind="silence")
    s.frame("vad", InterruptionFrame(), silence_start + 900)
    s.frame(
        "vad",
        UserStartedSpeakingFrame(speech_start_ns=s.ns(silence_start + 700)),
        silence_start + 900,
    )
    s.end(silence_start + 4000)
    result = measure_conversation(s.log.records, "cascade")
    assert result.turns[0].v2v_s == pytest.approx(0.600, abs=1e-9)
    assert result.false_turns == 1
    assert result.turns[1].false_turns == 1
    assert result.false_interruptions == 0  # the bot was silent: a false turn, not a cut
    assert result.silence_exposure_s == pytest.approx(3.0)


def test_summary_and_table_show_the_scripted_numbers(tmp_path: Path) -> None:
    s, v2v = _cascade_script()
    result = measure_conversation(s.log.records, "cascade")
    jsonl = tmp_path / "results.jsonl"
    lines = [
        {
            "type": "pipeline",
            "pipeline": "scripted",
            "file": "x.toml",
            "sha256": "0" * 64,
            "architecture": "cascade",
            "description": "scripted stages",
        }
    ]
    lines += [{"type": "turn", "pipeline": "scripted", **t.as_dict()} for t in result.turns]
    lines.append({"type": "conversation", "pipeline": "scripted", **result.as_dict()})
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    results = collect(jsonl, environment={}, settings={}, complete=True)
    summary = results["summary"]["scripted"]
    expected = sorted(v / 1000 for v in v2v)
    assert summary["v2v_s"]["p50"] == pytest.approx(expected[1], abs=1e-9)
    assert summary["v2v_s"]["p90"] == pytest.approx(percentile(expected, 90), abs=1e-9)
    assert summary["stage.llm_ttft"]["p50"] == pytest.approx(0.100, abs=1e-9)
    assert summary["counts"]["max_abs_gap_s"] == pytest.approx(0.0, abs=1e-9)
    header, rows = summary_table(results)
    assert header == ["metric", "scripted"]
    table = {row[0]: row[1] for row in rows}
    ms = [round(v) for v in sorted(v2v)]
    assert table["voice-to-voice"] == (
        f"{ms[1]} / {percentile(sorted(v2v), 90):.0f} / {percentile(sorted(v2v), 99):.0f}"
    )
    assert table["LLM time to first token"] == "100 / 140 / 149"
    assert table["unexplained gap"] == "0 / 0 / 0"
    assert "| voice-to-voice |" in markdown_report(results)


def test_percentiles_interpolate_linearly() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    stats = summarize([0.3, None, 0.1, 0.2])
    assert stats["n"] == 3
    assert stats["p50"] == pytest.approx(0.2)
    assert stats["max"] == pytest.approx(0.3)


def test_work_done_on_a_pause_counts_zero_and_still_reconciles() -> None:
    """Speculation: transcript, LLM and TTS all finish before the stop decision."""
    s = Script()
    s.start()
    speech_start, speech_end = s.item(0, 1000, 2300)  # type: ignore[misc]
    s.frame("vad", UserStartedSpeakingFrame(speech_start_ns=s.ns(speech_start)), speech_start + 200)
    s.frame("vad", UserPausedSpeakingFrame(speech_end_ns=s.ns(speech_end)), speech_end + 100)
    s.cascade_reply(
        speech_end + 100,
        stt=40,
        ttft=60,
        clause=50,
        synth=110,
        output=0,
        lead=0,
        length_ms=0,
        audio=False,
    )  # the TTS's first audio is pushed 360 ms after the end, then held
    s.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=s.ns(speech_end)), speech_end + 400)
    s.bot_audio(speech_end + 403, speech_end + 440, speech_end + 2000)
    s.end(speech_end + 4000)
    turn = measure_conversation(s.log.records, "cascade").turns[0]
    assert turn.v2v_s == pytest.approx(0.403, abs=1e-9)
    assert turn.stages == pytest.approx(
        {"end_of_turn": 0.400, "stt_final": 0.0, "llm_ttft": 0.0, "tts_ttfa": 0.0, "output": 0.003},
        abs=1e-9,
    )
    assert turn.gap_s == pytest.approx(0.0, abs=1e-9)
    assert turn.raw["stt_final"] == pytest.approx(-0.260, abs=1e-9)  # done before the decision
    assert turn.raw["llm_ttft"] == pytest.approx(0.060, abs=1e-9)
    assert turn.raw["tts_ttfa"] == pytest.approx(0.160, abs=1e-9)
    assert turn.raw["pause_decision"] == pytest.approx(0.100, abs=1e-9)


def test_a_transcript_superseded_by_a_resume_is_not_counted_twice() -> None:
    """Speculation on a pause, then a resume: only the whole-turn transcript is the hypothesis."""
    s = Script()
    s.start()
    speech_start, speech_end = s.item(0, 1000, 2300, transcript="sorry could you stop")  # type: ignore[misc]
    s.frame("vad", UserStartedSpeakingFrame(speech_start_ns=s.ns(speech_start)), speech_start + 200)
    s.frame("vad", UserPausedSpeakingFrame(), speech_start + 500)
    s.frame("stt.whisper", TranscriptionFrame(text="Sorry."), speech_start + 600)
    s.frame("vad", UserResumedSpeakingFrame(), speech_start + 650)
    s.frame("vad", UserPausedSpeakingFrame(speech_end_ns=s.ns(speech_end)), speech_end + 100)
    s.frame("stt.whisper", TranscriptionFrame(text="Sorry, could you stop?"), speech_end + 200)
    s.frame("vad", UserStoppedSpeakingFrame(speech_end_ns=s.ns(speech_end)), speech_end + 400)
    s.end(speech_end + 4000)
    turn = measure_conversation(s.log.records, "cascade").turns[0]
    assert turn.hypothesis == "Sorry, could you stop?"
    assert turn.wer == 0.0
