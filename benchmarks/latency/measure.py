"""Measurements as a pure function of a conversation's event records.

:func:`measure_conversation` takes the records of one conversation (the event
log, including the scenario transport's ``scenario_item`` placements) and returns
one :class:`TurnResult` per item plus the conversation's totals. Nothing here
reads a clock: the same records always give the same numbers, which is what the
deterministic accounting tests rely on.

For a user turn with true speech end ``E`` (from the corpus, placed to the sample)
and reply first audio ``A`` (the ``bot_first_audio`` play time of the first reply
that starts after the turn's speech began):

* ``v2v = A - E``; ``heard = first audible sample - E`` (``lead_silence`` apart).
* Stages: the events that led to the reply are found backwards from it (the TTS
  ``ttfa`` metric's push, the LLM's first text, the ``llm_messages``, the final
  ``transcription``) and the last ``user_stopped_speaking`` before it. Each stage
  counts from the later of its own start and the previous stage's end, so the
  stages are their shares of the critical path: ``end_of_turn`` (decision - ``E``),
  ``stt_final``, ``llm_ttft``, ``tts_ttfa`` (split into ``llm_first_clause`` and
  ``tts_synth`` at the LLM text that completed the first spoken piece), or
  ``s2s_ttfa`` for speech-to-speech, and ``output`` (``A`` - the previous end).
  Work done in parallel, such as a reply prepared on a pause before the decision,
  counts 0; the raw durations (``raw``) keep each stage's own time.
* ``gap = v2v - sum(stages)``: what no stage covers (the context hand-off, or
  everything after a missing event: the chain stops there). Shown, never hidden.
* Over a live transport (``parley bench --transport webrtc``) ``E`` is when the
  client sent the speech end and ``A`` when it received the reply's first audible
  sample. The server's stages run from ``speech_end_heard`` (when its input heard
  that sample) to its own first audible sample, and a ``transport`` stage holds
  the rest: ``transport_in`` (heard - ``E``) plus ``transport_out`` (``A`` - the
  server's first audible sample), so the stages still add up to ``v2v``.
* A barge-in turn also gets ``barge_in`` (last bot sample - start of the user's
  speech), split into ``barge_detect`` (interruption - speech start) and
  ``barge_stop``. A backchannel is no barge-in: the bot should talk through it,
  and an interruption it causes is a false one.
* Talk-overs, false ends of turn and the words lost from the context are measured
  by :mod:`benchmarks.latency.turntaking`.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.latency.chains import cascade_chain, s2s_chain
from benchmarks.latency.records import (
    ConversationResult,
    Record,
    RecordIndex,
    TurnResult,
    first,
    last,
    seconds,
)
from benchmarks.latency.turntaking import measure_turn_taking
from benchmarks.latency.wer import normalize_words, wer

__all__ = [
    "CASCADE_STAGES",
    "S2S_STAGES",
    "ConversationResult",
    "TurnResult",
    "measure_conversation",
]

CASCADE_STAGES = ("end_of_turn", "stt_final", "llm_ttft", "tts_ttfa", "output", "transport")
S2S_STAGES = ("end_of_turn", "s2s_ttfa", "output", "transport")
START_SLACK_NS = 300_000_000  # a VAD may date a start this much before the true one
TURN_TAIL_NS = 2_000_000_000  # an interruption this long after a turn's end is still its own
PAUSE_NS = 1_500_000_000  # the longest a bot paused at the onset waits for the decision
_NS = 1e9


def _speaking_at(stretches: list[tuple[int, int]], t: int) -> bool:
    return any(a <= t < b for a, b in stretches)


def measure_conversation(records: Sequence[Record], architecture: str) -> ConversationResult:
    """Measure every item of one conversation from its event records (see module doc)."""
    ix = RecordIndex(records)
    items = ix("scenario_item")
    start = ix("scenario_start")
    end = ix("scenario_end")
    origin = start[0]["t_ns"] if start else (items[0]["t_ns"] if items else 0)
    stop_t = end[0]["t_ns"] if end else max((r["t_ns"] for r in records), default=origin)
    stretches = ix.stretches()
    windows = [
        (r["speech_start_ns"], r["speech_end_ns"]) for r in items if r.get("speech_start_ns")
    ]
    turns: list[TurnResult] = []
    # each item's window runs to the next item's start (the last one's to the end)
    window_ends = [r["t_ns"] for r in items[1:]] + ([stop_t] if items else [])
    for item, window_end in zip(items, window_ends, strict=True):
        turns.append(_measure_item(ix, item, window_end, architecture, stretches, origin))
    measure_turn_taking(ix, items, turns, stretches, window_ends)
    false_turns, false_interruptions = _false_events(ix, items, windows, stretches, turns)
    cpu: dict[str, float] = {}
    for r in ix.metrics("cpu_s"):
        stage = str(r.get("processor", "?")).split(".")[0]
        cpu[stage] = cpu.get(stage, 0.0) + float(r["value"])
    cost = sum(float(r["value"]) for r in ix.metrics("cost_usd"))
    tokens = sum(float(r["value"]) for r in ix.metrics("tokens"))
    exposure = sum((r["end_ns"] - r["t_ns"]) / _NS for r in items if r.get("kind") == "silence")
    return ConversationResult(
        conversation=str(start[0].get("conversation", "")) if start else "",
        architecture=architecture,
        turns=turns,
        duration_s=round((stop_t - origin) / _NS, 6),
        end_reason=str(end[0].get("reason", "")) if end else "unfinished",
        cpu_s_by_stage={k: round(v, 6) for k, v in cpu.items()},
        cost_usd=cost,
        tokens=tokens,
        false_turns=false_turns,
        false_interruptions=false_interruptions,
        silence_exposure_s=round(exposure, 6),
        errors=[str(r.get("message", "")) for r in ix("error")],
    )


def _measure_item(
    ix: RecordIndex,
    item: Record,
    window_end: int,
    architecture: str,
    stretches: list[tuple[int, int]],
    origin: int,
) -> TurnResult:
    ss, se = item.get("speech_start_ns"), item.get("speech_end_ns")
    result = TurnResult(
        conversation=str(item.get("conversation", "")),
        index=int(item.get("index", 0)),
        turn=int(item.get("turn", 0)),
        kind=str(item.get("kind", "")),
        trigger=str(item.get("trigger", "")),
        transcript=str(item.get("transcript") or ""),
        snr_db=item.get("snr_db"),
        start_s=round((item["t_ns"] - origin) / _NS, 6),
        speech_start_s=seconds(None if ss is None else ss - origin),
        speech_end_s=seconds(None if se is None else se - origin),
    )
    if ss is None or se is None:
        return result
    result.bot_speaking_at_start = _speaking_at(stretches, ss)
    replies = [r for r in ix.replies() if ss < r["t_ns"] < window_end]
    early = [r for r in replies if r["t_ns"] < se]
    later = [r for r in replies if r["t_ns"] >= se]
    reply = later[0] if later else (early[-1] if early else None)
    stops = [r for r in ix("user_stopped_speaking") if ss <= r["t_ns"] < window_end]
    result.vad_turns = sum(1 for r in ix("user_started_speaking") if ss <= r["t_ns"] < window_end)
    result.talk_overs = len(early)
    if reply is not None:
        stops = [r for r in stops if r["t_ns"] <= reply["t_ns"]]
        result.replied = True
        result.early = reply["t_ns"] < se
        result.v2v_s = seconds(reply["t_ns"] - se)
        audible = ix.audible.get(reply.get("reply"))
        if audible is not None:
            result.heard_s = seconds(audible - se)
            result.lead_silence_s = seconds(audible - reply["t_ns"])
    decision = stops[-1] if stops else None
    # Over a live transport the server's stages run from when it heard the speech end
    # to its own first audible sample; the network path on both sides is "transport".
    link = _transport_link(ix, item, reply)
    chain_end, chain_reply = (se, reply) if link is None else link
    if architecture == "s2s":
        s2s_chain(ix, result, decision, chain_reply, chain_end)
    else:
        cascade_chain(ix, result, decision, chain_reply, (ss, chain_end), window_end)
    if link is not None and reply is not None and chain_reply is not None:
        inbound, outbound = chain_end - se, reply["t_ns"] - chain_reply["t_ns"]
        result.stages["transport"] = seconds(inbound + outbound) or 0.0
        result.substages["transport_in"] = seconds(inbound) or 0.0
        result.substages["transport_out"] = seconds(outbound) or 0.0
    if result.v2v_s is not None:
        result.stage_sum_s = round(sum(result.stages.values()), 6)
        result.gap_s = round(result.v2v_s - result.stage_sum_s, 6)
    _reported(ix, result, decision, reply)
    if item.get("trigger") == "during_reply" and item.get("kind") != "backchannel":
        _barge_in(ix, result, ss, window_end)
    transcripts = _final_transcripts(ix, ss, window_end)
    texts = [str(r.get("text", "")) for r in transcripts if str(r.get("text", "")).strip()]
    if texts:
        result.hypothesis = " ".join(texts)
        result.wer = round(wer(result.transcript, result.hypothesis), 6)
    if reply is not None:
        _reply(ix, result, (ss, reply["t_ns"], window_end), stretches, decision)
    elif item.get("reply_expected"):
        result.notes.append("no reply")
    return result


def _final_transcripts(ix: RecordIndex, ss: int, window_end: int) -> list[Record]:
    """The utterance's transcripts, without those a resume superseded.

    A transcript made on a pause that the user then resumed (within the same VAD
    turn: before any new start) is superseded, since the transcript after the
    resume covers that turn again. A turn that ended and was followed by a new one
    (a false end of turn) keeps its transcript: the next one holds only new words.
    """
    transcripts = [r for r in ix("transcription") if ss < r["t_ns"] < window_end]
    starts = [r["t_ns"] for r in ix("user_started_speaking") if ss <= r["t_ns"] < window_end]
    resumes = [r["t_ns"] for r in ix("user_resumed_speaking") if ss < r["t_ns"] < window_end]

    def superseded(t: int) -> bool:
        next_start = min((s for s in starts if s > t), default=window_end)
        return any(t < r < next_start for r in resumes)

    return [r for r in transcripts if not superseded(r["t_ns"])]


def _transport_link(
    ix: RecordIndex, item: Record, reply: Record | None
) -> tuple[int, Record | None] | None:
    """Over a live transport: when the server heard the speech end, and its reply start.

    None over the file transport (no ``speech_end_heard`` record). The server's reply
    start is its first audible sample (``server_bot_first_audible``; the first sample
    when audibility is unknown) of the last reply it started before the client's.
    """
    heard = [r for r in ix("speech_end_heard") if r.get("index") == item.get("index")]
    if not heard:
        return None
    if reply is None:
        return heard[0]["t_ns"], None
    starts = ix("server_bot_first_audible") or ix("server_bot_first_audio")
    # a reply the server started before it heard the end (the bot talked over) counts too
    speech_start = item.get("speech_start_ns") or heard[0]["t_ns"]
    before = [r for r in starts if speech_start <= r["t_ns"] <= reply["t_ns"]]
    return heard[0]["t_ns"], (before[-1] if before else None)


def _reported(
    ix: RecordIndex, result: TurnResult, decision: Record | None, reply: Record | None
) -> None:
    """The stages' own metric values for this turn, to cross-check the event-based stages."""
    if decision is None:
        return
    limit = reply["t_ns"] + 1 if reply is not None else float("inf")
    for name in ("end_of_turn_s", "stt_final_s", "ttft", "ttfa"):
        found = first(ix.metrics(name), decision["t_ns"], limit)
        if found is not None:
            result.reported[name] = round(float(found["value"]), 6)


def _barge_in(ix: RecordIndex, result: TurnResult, ss: int, window_end: int) -> None:
    if not result.bot_speaking_at_start:
        result.notes.append("bot silent when the barge-in started")
        return
    # Over a live transport the client hears the end only once the server has stopped
    # sending: a pause in the reply before that is no stop.
    cut = first(ix("server_bot_audio_stopped"), ss, window_end)
    stopped = None
    if cut is not None:
        # ...unless the client heard nothing of the bot again between that pause and the
        # cut: then its last sample before the pause was the last one heard.
        paused = last(ix("bot_audio_stopped"), ss, cut["t_ns"])
        if paused is not None and first(ix("bot_started_speaking"), paused["t_ns"], cut["t_ns"]):
            paused = None
        stopped = paused or first(ix("bot_audio_stopped"), cut["t_ns"], window_end)
    stopped = stopped or first(ix("bot_audio_stopped"), ss, window_end)
    if stopped is None:
        result.notes.append("bot never stopped")
        return
    result.barge_in_s = seconds(stopped["t_ns"] - ss)
    # the cut can fall on a chunk boundary just before the decision is recorded
    interruption = first(ix("interruption"), ss, window_end)
    if interruption is not None:
        result.barge_detect_s = seconds(interruption["t_ns"] - ss)
        result.barge_stop_s = seconds(max(0, stopped["t_ns"] - interruption["t_ns"]))
    # over a live transport the client only hears the audio stop; the server knows why
    cause = cut or stopped
    if not cause.get("interrupted", True):
        result.notes.append("the bot finished its reply before the barge-in took effect")


def _reply(
    ix: RecordIndex,
    result: TurnResult,
    span: tuple[int, int, int],
    stretches: list[tuple[int, int]],
    decision: Record | None,
) -> None:
    """The reply's words and played audio; ``span`` is (speech start, reply, window end).

    A reply prepared on a pause and held until the end of the turn was synthesised
    before the decision: its words count from the response that produced it.
    """
    speech_start, reply_t, window_end = span
    since = decision["t_ns"] if decision is not None else reply_t
    responses = [
        r["t_ns"] for r in ix("llm_response_start") if speech_start <= r["t_ns"] <= reply_t
    ]
    if responses:
        since = min(since, max(responses))
    pieces = [
        str(r.get("text", ""))
        for r in ix("tts_text")
        if since <= r["t_ns"] < window_end and not str(r.get("processor", "")).endswith("output")
    ]
    result.reply_text = " ".join(p.strip() for p in pieces if p.strip())
    result.reply_words = len(normalize_words(result.reply_text))
    played = 0.0
    for r in ix("bot_audio_stopped"):
        begun = [a for a, b in stretches if b == r["t_ns"]]
        if begun and reply_t <= begun[0] < window_end:
            played += float(r.get("played_s", 0.0))
    result.reply_audio_s = round(played, 6)


def _false_events(
    ix: RecordIndex,
    items: list[Record],
    windows: list[tuple[int, int]],
    stretches: list[tuple[int, int]],
    turns: list[TurnResult],
) -> tuple[int, int]:
    """Count user starts and interruptions that no user speech explains; charge them to items.

    A backchannel explains a user start but not an interruption: the bot should
    have talked through it.
    """

    def owner(t: int) -> TurnResult | None:
        for n, item in enumerate(items):
            nxt = items[n + 1]["t_ns"] if n + 1 < len(items) else float("inf")
            if item["t_ns"] <= t < nxt:
                return turns[n]
        return None

    backchannels = [
        (r["speech_start_ns"], r["speech_end_ns"] + TURN_TAIL_NS)
        for r in items
        if r.get("kind") == "backchannel" and r.get("speech_start_ns") is not None
    ]
    turn_windows = [
        (r["speech_start_ns"], r["speech_end_ns"])
        for r in items
        if r.get("speech_start_ns") and r.get("kind") != "backchannel"
    ]
    # a bot paused at the onset stopped playing before the interruption that cut it
    cut_ends = [r["t_ns"] for r in ix("bot_audio_stopped") if r.get("interrupted")]
    false_turns = false_interruptions = 0
    for r in ix("user_started_speaking"):
        at = r.get("speech_start_ns") or r["t_ns"]
        if not any(ss - START_SLACK_NS <= at <= se for ss, se in windows):
            false_turns += 1
            target = owner(r["t_ns"])
            if target is not None:
                target.false_turns += 1
    for r in ix("interruption"):
        t = r["t_ns"]
        # an interruption in a backchannel's window is false even if a turn's tail covers it
        over_backchannel = any(a <= t <= b for a, b in backchannels)
        if not over_backchannel and any(ss <= t <= se + TURN_TAIL_NS for ss, se in turn_windows):
            continue
        paused = any(t - PAUSE_NS <= end <= t for end in cut_ends)
        if _speaking_at(stretches, t) or paused:
            false_interruptions += 1
            target = owner(t)
            if target is not None:
                target.false_interruptions += 1
    return false_turns, false_interruptions
