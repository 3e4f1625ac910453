"""Turn-taking on real-speech patterns: talk-overs, false ends, backchannels, lost words.

These measurements complete :func:`benchmarks.latency.measure.measure_conversation`
for each user utterance (a corpus item with speech, from its first to its last
speech sample, pauses included):

* ``false_ends``: turns the pipeline ended inside the utterance (a
  ``user_stopped_speaking`` decided before the utterance's last speech sample);
* ``talk_over_s``: bot audio played while the user was inside the utterance, from
  audible replies that started after the utterance began (so a barge-in's overlap
  with the reply it interrupts does not count, nor a stretch of silent audio);
* ``bot_stopped`` (backchannel items): the bot was cut by an "uh-huh" it should
  have talked through; it is also counted as a false interruption;
* words lost from the context: every utterance that expects a reply is compared
  with the user messages of the conversation's final LLM context (the
  ``context_final`` record the runner adds once the conversation is over). All the
  utterances' words, normalised as for the WER, are aligned in order against all
  the user messages' words; ``context_missing`` counts the words of this utterance
  with no identical word in the context, and ``context_lost`` those of them that
  the speech-to-text did transcribe (found in the utterance's transcripts, superseded
  ones included) and that have no word in their place in the context (the
  alignment deletes them): the words the turn-taking dropped, apart from
  recognition errors and words a later pass over the turn heard otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.latency.records import Record, RecordIndex, TurnResult
from benchmarks.latency.wer import normalize_words

__all__ = [
    "CONTEXT_EVENT",
    "align",
    "context_user_messages",
    "measure_turn_taking",
    "overlap_ns",
    "record_context",
]

START_SLACK_NS = 20_000_000  # a reply's first sample and its stretch's start: one chunk apart
CONTEXT_EVENT = "context_final"
"""The record holding the user messages of the final context (``user_messages``)."""


def overlap_ns(spans: Iterable[tuple[int, int]], lo: int, hi: int) -> int:
    """Total length of ``spans`` that falls inside ``[lo, hi)``."""
    return sum(max(0, min(b, hi) - max(a, lo)) for a, b in spans)


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> list[bool]:
    """For each reference word, whether a minimum edit alignment matches it exactly.

    Ties are broken towards matches, then substitutions, so a word is unmatched
    only when no alignment of least cost pairs it with an identical word.
    """
    return [op == MATCH for op in align_ops(reference, hypothesis)]


MATCH, SUBSTITUTED, DELETED = "=", "~", "-"


def align_ops(reference: Sequence[str], hypothesis: Sequence[str]) -> list[str]:
    """For each reference word, what a minimum edit alignment does with it: matched
    (:data:`MATCH`), paired with another word (:data:`SUBSTITUTED`) or left without
    one (:data:`DELETED`). Ties go to matches, then substitutions."""
    n, m = len(reference), len(hypothesis)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, previous = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            same = reference[i - 1] == hypothesis[j - 1]
            row[j] = min(previous[j - 1] + (not same), previous[j] + 1, row[j - 1] + 1)
    ops = [DELETED] * n
    i, j = n, m
    while i > 0 and j > 0:
        same = reference[i - 1] == hypothesis[j - 1]
        if cost[i][j] == cost[i - 1][j - 1] + (not same):
            ops[i - 1] = MATCH if same else SUBSTITUTED
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return ops


def context_user_messages(messages: Iterable[dict[str, Any]]) -> list[str]:
    """The text of the user messages, from chat messages or realtime conversation items."""
    texts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            parts = [str(p.get("text") or p.get("transcript") or "") for p in content]
            texts.append(" ".join(p for p in parts if p))
    return texts


@dataclass
class _Source:
    name: str


def record_context(log_: Any, session: Any) -> None:
    """Add the user messages of ``session``'s final context to the event log ``log_``.

    A speech-to-speech stage keeps the conversation itself (its items as the
    server holds them); a cascade keeps it in the shared LLM context.
    """
    realtime = session.stages.get("realtime")
    items = getattr(realtime, "conversation_items", None)
    messages = items() if callable(items) else (session.context.messages if session.context else [])
    fields = {"user_messages": context_user_messages(messages)}
    log_.on_event(_Source("bench"), CONTEXT_EVENT, time.monotonic_ns(), fields)


def measure_turn_taking(
    ix: RecordIndex,
    items: Sequence[Record],
    turns: Sequence[TurnResult],
    stretches: Sequence[tuple[int, int]],
    window_ends: Sequence[int],
) -> None:
    """Fill the turn-taking fields of ``turns`` (one per item, in order; see module doc)."""
    audible = [span for span in stretches if _audible(ix, span[0])]
    for item, turn, window_end in zip(items, turns, window_ends, strict=True):
        ss, se = item.get("speech_start_ns"), item.get("speech_end_ns")
        if ss is None or se is None:
            continue
        turn.reply_expected = bool(item.get("reply_expected", True))
        stops = ix("user_stopped_speaking")
        turn.false_ends = sum(1 for r in stops if ss <= r["t_ns"] < se)
        later = [(a, b) for a, b in audible if a > ss]
        turn.talk_over_s = round(overlap_ns(later, ss, se) / 1e9, 6)
        if turn.kind == "backchannel":
            _backchannel(ix, turn, ss, window_end, stretches)
    _words_lost(ix, items, turns, window_ends)


def _audible(ix: RecordIndex, start_ns: int) -> bool:
    """Whether the reply playing in the stretch of bot audio that starts at ``start_ns`` is heard.

    The reply is the last one whose first sample was played by then (its first
    sample and the stretch's start are stamped a moment apart); a reply with no
    audible sample is silence. Unknown audibility counts as audible.
    """
    if not ix.audible:
        return True
    begun = [r for r in ix("bot_first_audio") if r["t_ns"] <= start_ns + START_SLACK_NS]
    return not begun or begun[-1].get("reply") in ix.audible


def _backchannel(
    ix: RecordIndex,
    turn: TurnResult,
    ss: int,
    window_end: int,
    stretches: Sequence[tuple[int, int]],
) -> None:
    """Whether a backchannel spoken over the bot cut it.

    An interruption while it spoke, or a stretch of bot audio ending interrupted
    after the backchannel began (the bot paused at the onset, then cut).
    """
    speaking = any(a <= ss < b for a, b in stretches)
    turn.bot_speaking_at_start = speaking
    if not speaking:
        turn.notes.append("bot silent when the backchannel started")
        return
    cut = [
        r
        for r in ix("interruption")
        if ss <= r["t_ns"] < window_end and any(a <= r["t_ns"] < b for a, b in stretches)
    ]
    # A bot paused at the onset stops playing before the decision: its stretch ends
    # at the pause, and the interruption that makes the cut final comes after it.
    cut += [
        r for r in ix("bot_audio_stopped") if ss <= r["t_ns"] < window_end and r.get("interrupted")
    ]
    turn.bot_stopped = bool(cut)
    if cut:
        turn.notes.append("a backchannel stopped the bot")


def _words_lost(
    ix: RecordIndex,
    items: Sequence[Record],
    turns: Sequence[TurnResult],
    window_ends: Sequence[int],
) -> None:
    final = ix(CONTEXT_EVENT)
    if not final:
        return
    context = normalize_words(" ".join(str(t) for t in final[-1].get("user_messages", [])))
    expected = [
        (n, normalize_words(str(item.get("transcript") or "")))
        for n, item in enumerate(items)
        if item.get("speech_start_ns") is not None and item.get("reply_expected", True)
    ]
    reference = [word for _n, words in expected for word in words]
    placed = align_ops(reference, context)
    at = 0
    for n, words in expected:
        in_context = placed[at : at + len(words)]
        at += len(words)
        turn, item = turns[n], items[n]
        heard_words = _transcribed(ix, item, window_ends[n])
        heard = align(words, heard_words)
        turn.context_words = len(words)
        turn.context_missing = sum(1 for op in in_context if op != MATCH)
        # Lost: transcribed, and nothing in its place in the context. A word the
        # context holds another word for was heard otherwise by a later pass over the
        # turn ("a tent" at a pause, "the tent" in the final transcript).
        turn.context_lost = sum(
            1 for op, got in zip(in_context, heard, strict=True) if got and op == DELETED
        )


def _transcribed(ix: RecordIndex, item: Record, window_end: int) -> list[str]:
    """Every word the speech-to-text gave for the utterance, superseded transcripts included."""
    ss = item["speech_start_ns"]
    texts = [str(r.get("text", "")) for r in ix("transcription") if ss < r["t_ns"] < window_end]
    return normalize_words(" ".join(texts))
