"""Summaries of raw measurements: percentiles per pipeline and per metric.

Percentiles interpolate linearly between the two nearest ranks (numpy's default
"linear" method), so with few turns p99 sits close to the maximum; ``n`` is always
reported alongside.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["LATENCY_METRICS", "percentile", "summarize", "summarize_pipeline"]

LATENCY_METRICS = (
    "v2v_s",
    "heard_s",
    "stage.end_of_turn",
    "stage.stt_final",
    "stage.llm_ttft",
    "stage.tts_ttfa",
    "stage.s2s_ttfa",
    "stage.output",
    "stage.transport",
    "sub.llm_first_clause",
    "sub.tts_synth",
    "sub.transport_in",
    "sub.transport_out",
    "gap_s",
    "barge_in_s",
    "barge_detect_s",
)
OTHER_METRICS = ("wer", "reply_words", "reply_audio_s")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` with linear interpolation; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Iterable[float | None]) -> dict[str, Any]:
    """n, p50, p90, p99, mean, min and max of the values that are not None."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"n": 0}
    return {
        "n": len(kept),
        "p50": percentile(kept, 50),
        "p90": percentile(kept, 90),
        "p99": percentile(kept, 99),
        "mean": sum(kept) / len(kept),
        "min": min(kept),
        "max": max(kept),
    }


def metric_value(turn: dict[str, Any], metric: str) -> float | None:
    """A turn's value of ``metric`` (``stage.x`` and ``sub.x`` look inside the dicts)."""
    if metric.startswith("stage."):
        value = turn.get("stages", {}).get(metric[6:])
    elif metric.startswith("sub."):
        value = turn.get("substages", {}).get(metric[4:])
    else:
        value = turn.get(metric)
    return None if value is None else float(value)


def is_barge_in(turn: dict[str, Any]) -> bool:
    """A turn spoken over the bot to stop it (a backchannel is not meant to stop it)."""
    return turn.get("trigger") == "during_reply" and turn.get("kind") != "backchannel"


def turn_taking_counts(speech: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Talk-overs, false ends, split turns, backchannels and words lost over ``speech`` turns."""
    known = [t for t in speech if t.get("context_words") is not None]
    backchannels = [t for t in speech if t.get("kind") == "backchannel"]
    return {
        "talk_over_turns": sum(1 for t in speech if float(t.get("talk_over_s") or 0) > 0),
        "talk_over_s": round(sum(float(t.get("talk_over_s") or 0) for t in speech), 6),
        "false_ends": sum(int(t.get("false_ends") or 0) for t in speech),
        "false_end_turns": sum(1 for t in speech if t.get("false_ends")),
        "backchannels": len(backchannels),
        "backchannels_stopped_bot": sum(1 for t in backchannels if t.get("bot_stopped")),
        "context_words": sum(int(t["context_words"]) for t in known) if known else None,
        "context_missing": sum(int(t["context_missing"]) for t in known) if known else None,
        "context_lost": sum(int(t["context_lost"]) for t in known) if known else None,
    }


def summarize_kind(turns: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The turn-taking counts and key latencies of the turns of one kind."""
    replied = [t for t in turns if t.get("replied") and not t.get("early")]
    return {
        "turns": len(turns),
        "replied": len(replied),
        "split_turns": sum(1 for t in turns if t.get("vad_turns", 0) > 1),
        **turn_taking_counts(turns),
        "v2v_s": summarize(t.get("v2v_s") for t in replied if t.get("reply_expected", True)),
        "barge_in_s": summarize(t.get("barge_in_s") for t in turns if is_barge_in(t)),
        "wer": summarize(t.get("wer") for t in turns),
    }


def summarize_pipeline(
    turns: Sequence[dict[str, Any]], conversations: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Every metric's summary for one pipeline, plus counts and per-minute costs."""
    speech = [t for t in turns if t.get("speech_end_s") is not None]
    replied = [
        t
        for t in speech
        if t.get("replied") and not t.get("early") and t.get("reply_expected", True)
    ]
    barge_ins = [t for t in speech if is_barge_in(t)]
    out: dict[str, Any] = {}
    for metric in LATENCY_METRICS:
        source = barge_ins if metric.startswith("barge") else replied
        out[metric] = summarize(metric_value(t, metric) for t in source)
    out["barge_in_short_s"] = summarize(
        t.get("barge_in_s") for t in barge_ins if t.get("kind") == "short_barge_in"
    )
    for metric in OTHER_METRICS:
        out[metric] = summarize(metric_value(t, metric) for t in replied if metric != "wer")
    out["wer"] = summarize(t.get("wer") for t in speech)
    gaps = [abs(t["gap_s"]) for t in replied if t.get("gap_s") is not None]
    minutes = sum(float(c.get("duration_s", 0.0)) for c in conversations) / 60
    exposure = sum(float(c.get("silence_exposure_s", 0.0)) for c in conversations)
    stage_cpu = sum(sum(c.get("cpu_s_by_stage", {}).values()) for c in conversations)
    total_cpu = sum(
        float(c.get("process_cpu_s", 0.0)) + float(c.get("children_cpu_s", 0.0))
        for c in conversations
    )
    out["counts"] = {
        "turns": len(speech),
        "replied": len(replied),
        "no_reply": sum(1 for t in speech if not t.get("replied")),
        "early_reply": sum(1 for t in speech if t.get("early")),
        "talked_over": sum(1 for t in speech if t.get("talk_overs", 0) > 0),
        "split_turns": sum(1 for t in speech if t.get("vad_turns", 0) > 1),
        "barge_ins": len(barge_ins),
        "barge_ins_measured": sum(1 for t in speech if t.get("barge_in_s") is not None),
        "false_turns": sum(int(c.get("false_turns", 0)) for c in conversations),
        "false_interruptions": sum(int(c.get("false_interruptions", 0)) for c in conversations),
        "silence_exposure_s": round(exposure, 3),
        "max_abs_gap_s": max(gaps) if gaps else None,
        "turns_gap_over_5ms": sum(1 for g in gaps if g > 0.005),
        **turn_taking_counts(speech),
    }
    out["by_kind"] = {
        kind: summarize_kind([t for t in speech if t.get("kind") == kind])
        for kind in sorted({str(t.get("kind")) for t in speech})
    }
    out["cost"] = {
        "conversation_minutes": round(minutes, 4),
        "stage_cpu_s_per_min": round(stage_cpu / minutes, 3) if minutes else None,
        "process_cpu_s_per_min": round(total_cpu / minutes, 3) if minutes else None,
        "usd_per_min": round(sum(float(c.get("cost_usd", 0.0)) for c in conversations) / minutes, 5)
        if minutes
        else None,
        "tokens": sum(float(c.get("tokens", 0.0)) for c in conversations),
    }
    return out
