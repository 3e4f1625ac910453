"""Result types of the measurement and an index over a conversation's event records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ConversationResult", "Record", "RecordIndex", "TurnResult", "first", "last", "seconds"]

Record = dict[str, Any]
_NS = 1e9


@dataclass
class TurnResult:
    """The measurements of one corpus item (user turn or stretch without speech)."""

    conversation: str
    index: int
    turn: int
    kind: str
    trigger: str
    transcript: str = ""
    snr_db: float | None = None
    start_s: float = 0.0
    speech_start_s: float | None = None
    speech_end_s: float | None = None
    replied: bool = False
    early: bool = False
    talk_overs: int = 0
    v2v_s: float | None = None
    heard_s: float | None = None
    lead_silence_s: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    substages: dict[str, float] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)
    stage_sum_s: float | None = None
    gap_s: float | None = None
    reported: dict[str, float] = field(default_factory=dict)
    bot_speaking_at_start: bool | None = None
    barge_in_s: float | None = None
    barge_detect_s: float | None = None
    barge_stop_s: float | None = None
    hypothesis: str | None = None
    wer: float | None = None
    vad_turns: int = 0
    false_turns: int = 0
    false_interruptions: int = 0
    reply_text: str = ""
    reply_words: int = 0
    reply_audio_s: float = 0.0
    reply_expected: bool = True
    false_ends: int = 0
    talk_over_s: float = 0.0
    bot_stopped: bool | None = None
    context_words: int | None = None
    context_missing: int | None = None
    context_lost: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class ConversationResult:
    """Every item's result and the conversation's totals."""

    conversation: str
    architecture: str
    turns: list[TurnResult]
    duration_s: float
    end_reason: str
    cpu_s_by_stage: dict[str, float]
    cost_usd: float
    tokens: float
    false_turns: int
    false_interruptions: int
    silence_exposure_s: float
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the totals (turns are stored separately)."""
        data = asdict(self)
        data.pop("turns")
        return data


def seconds(ns: int | None) -> float | None:
    """Nanoseconds to seconds, rounded to the microsecond (None stays None)."""
    return None if ns is None else round(ns / _NS, 6)


def first(records: Iterable[Record], after: int, before: float = float("inf")) -> Record | None:
    """The first record with ``after <= t_ns < before``."""
    for r in records:
        if after <= r["t_ns"] < before:
            return r
    return None


class RecordIndex:
    """The records of one conversation grouped by event name, each list in time order."""

    def __init__(self, records: Sequence[Record]) -> None:
        ordered = sorted(records, key=lambda r: r["t_ns"])
        self.by: dict[str, list[Record]] = {}
        for r in ordered:
            self.by.setdefault(r["event"], []).append(r)

        self.audible = {r.get("reply"): r["t_ns"] for r in reversed(self("bot_first_audible"))}

    def __call__(self, event: str) -> list[Record]:
        return self.by.get(event, [])

    def replies(self) -> list[Record]:
        """Starts of replies a listener could hear (all of them if audibility is unknown)."""
        starts = self("bot_first_audio")
        if not self.audible:
            return starts
        return [r for r in starts if r.get("reply") in self.audible]

    def metrics(
        self, name: str, prefix: str | None = None, exclude: str | None = None
    ) -> list[Record]:
        out = []
        for r in self("metric"):
            proc = str(r.get("processor", ""))
            if r.get("name") != name:
                continue
            if prefix is not None and not proc.startswith(prefix):
                continue
            if exclude is not None and proc.startswith(exclude):
                continue
            out.append(r)
        return out

    def stretches(self) -> list[tuple[int, int]]:
        """Bot speaking intervals: started push to the end of the last sample."""
        stops = [r["t_ns"] for r in self("bot_audio_stopped")]
        out: list[tuple[int, int]] = []
        for start in (r["t_ns"] for r in self("bot_started_speaking")):
            if out and start < out[-1][1]:
                continue
            stop = next((s for s in stops if s >= start), None)
            out.append((start, stop if stop is not None else 2**62))
        return out


def last(records: Iterable[Record], after: float, upto: float) -> Record | None:
    """The last record with ``after <= t_ns <= upto``."""
    found = None
    for r in records:
        if r["t_ns"] > upto:
            break
        if r["t_ns"] >= after:
            found = r
    return found
