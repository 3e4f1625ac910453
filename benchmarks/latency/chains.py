"""The stage chains: which events led to a reply, and each stage's share of the latency.

The events are found backwards from the reply (see :mod:`benchmarks.latency.measure`),
and :func:`critical_path` gives each stage the time from the later of its own end
and the previous stage's end, so parallel work counts 0 and the shares add up.
"""

from __future__ import annotations

import re

from benchmarks.latency.records import Record, RecordIndex, TurnResult, first, last, seconds

__all__ = ["cascade_chain", "critical_path", "s2s_chain"]

_UNSPOKEN = re.compile(r"[\s*_#`~|<>]+")  # whitespace, and marks the TTS drops


def critical_path(
    result: TurnResult, se: int, chain: list[tuple[str, int | None]], reply: Record | None
) -> None:
    """Each stage's share of the critical path from ``se`` to the reply.

    A stage counts from the later of its predecessor's end and the previous
    boundary, so work done in parallel (before the end-of-turn decision, on a
    pause) counts 0, and the shares add up to the voice-to-voice latency. The
    chain stops at the first missing event: the rest is left to the gap.
    """
    reached = se
    for name, t in chain:
        if t is None:
            return
        if name.startswith("sub."):
            continue
        result.stages[name] = seconds(max(0, t - reached)) or 0.0
        reached = max(reached, t)
    if reply is not None:
        result.stages["output"] = seconds(max(0, reply["t_ns"] - reached)) or 0.0


def cascade_chain(
    ix: RecordIndex,
    result: TurnResult,
    decision: Record | None,
    reply: Record | None,
    speech: tuple[int, int],
    window_end: int,
) -> None:
    """Find the events that led to the reply, backwards from it, and share out the time."""
    if decision is None:
        return
    ss, se = speech
    upto = reply["t_ns"] if reply is not None else window_end
    audio = last(ix.metrics("ttfa", prefix="tts"), ss, upto)
    first_text = last(ix("llm_first_text"), ss, audio["t_ns"] if audio else upto)
    messages = last(ix("llm_messages"), ss, first_text["t_ns"] if first_text else upto)
    final = last(ix("transcription"), ss, messages["t_ns"] if messages else upto)
    t = {
        "decision": decision["t_ns"],
        "final": final["t_ns"] if final else None,
        "messages": messages["t_ns"] if messages else None,
        "first_text": first_text["t_ns"] if first_text else None,
        "audio": audio["t_ns"] if audio else None,
    }
    critical_path(
        result,
        se,
        [
            ("end_of_turn", t["decision"]),
            ("stt_final", t["final"]),
            ("handoff", t["messages"]),
            ("llm_ttft", t["first_text"]),
            ("tts_ttfa", t["audio"]),
        ],
        reply,
    )
    handoff = result.stages.pop("handoff", None)
    if handoff is not None:
        result.substages["handoff"] = handoff
    raw = result.raw
    if t["final"] is not None:
        raw["stt_final"] = seconds(t["final"] - t["decision"]) or 0.0
    if t["messages"] is not None and t["first_text"] is not None:
        raw["llm_ttft"] = seconds(t["first_text"] - t["messages"]) or 0.0
    if first_text is not None and audio is not None:
        raw["tts_ttfa"] = seconds(audio["t_ns"] - first_text["t_ns"]) or 0.0
        clause = _clause_ready(ix, first_text, audio["t_ns"])
        if clause is not None:
            raw["llm_first_clause"] = seconds(clause - first_text["t_ns"]) or 0.0
            raw["tts_synth"] = seconds(audio["t_ns"] - clause) or 0.0
            if "tts_ttfa" in result.stages:
                # the TTS share, split at the LLM text that completed the first piece
                start = audio["t_ns"] - round(result.stages["tts_ttfa"] * 1e9)
                result.substages["llm_first_clause"] = seconds(max(0, clause - start)) or 0.0
                result.substages["tts_synth"] = seconds(audio["t_ns"] - max(start, clause)) or 0.0
    pause = last(ix("user_paused_speaking"), se - 10**9, t["decision"])
    if pause is not None:
        raw["pause_decision"] = seconds(pause["t_ns"] - se) or 0.0


def _clause_ready(ix: RecordIndex, first_text: Record, audio_t: int) -> int | None:
    """When the LLM text completing the first spoken piece arrived (None if unknown)."""
    tts_texts = [r for r in ix("tts_text") if str(r.get("processor", "")).startswith("tts")]
    piece = first(tts_texts, first_text["t_ns"], audio_t + 1)
    if piece is None:
        return None
    target = _UNSPOKEN.sub("", str(piece.get("text", "")).lower())
    texts = [first_text] + [r for r in ix("llm_text") if first_text["t_ns"] <= r["t_ns"] <= audio_t]
    seen = ""
    for r in texts:
        seen += _UNSPOKEN.sub("", str(r.get("text", "")).lower())
        if target and target in seen:
            return int(r["t_ns"])
    return None


def s2s_chain(
    ix: RecordIndex, result: TurnResult, decision: Record | None, reply: Record | None, se: int
) -> None:
    if decision is None:
        return
    upto = reply["t_ns"] if reply is not None else float("inf")
    audio = last(ix.metrics("ttfa", exclude="tts"), decision["t_ns"], upto)
    if audio is None and reply is None:
        audio = first(ix.metrics("ttfa", exclude="tts"), decision["t_ns"])
    chain = [("end_of_turn", decision["t_ns"]), ("s2s_ttfa", audio["t_ns"] if audio else None)]
    critical_path(result, se, chain, reply)
    if audio is not None:
        result.raw["s2s_ttfa"] = seconds(audio["t_ns"] - decision["t_ns"]) or 0.0
