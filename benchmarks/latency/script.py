"""The scripted conversations of the built-in corpus (the words the user says).

Each conversation is a list of :class:`Line`. Speech lines are spoken by Piper
(the joe voice) when the corpus is generated; ``silence`` lines are stretches
without speech (digital silence, or noise at ``noise_dbfs``). The first
conversation, ``quick``, is the whole corpus of ``parley bench --quick``.

A ``hesitation`` line marks its pauses with ``|`` in ``text``; ``pauses_ms`` gives
the silence of each, from the last speech sample before the mark to the first
after it (500-900 ms: a person thinking, listing, saying "um").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

__all__ = ["CONVERSATIONS", "QUICK", "Line", "script_digest"]


@dataclass(frozen=True)
class Line:
    """One scripted item; see :class:`benchmarks.latency.corpus.ManifestLine`."""

    kind: str
    text: str = ""
    snr_db: float | None = None
    delay_s: float | None = None
    gap_s: float | None = None
    trigger: str | None = None
    duration_s: float | None = None
    noise_dbfs: float | None = None
    pauses_ms: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        marks = self.text.count(PAUSE)
        if marks != len(self.pauses_ms):
            raise ValueError(
                f"{self.text!r}: {marks} pause mark(s) '{PAUSE}' but {len(self.pauses_ms)} "
                "pause length(s) in pauses_ms"
            )

    @property
    def segments(self) -> list[str]:
        """The text between pauses, each spoken as one piece."""
        return [part.strip() for part in self.text.split(PAUSE)]

    @property
    def spoken(self) -> str:
        """The words as said, without the pause marks."""
        return " ".join(self.segments)


QUICK = "quick"
PAUSE = "|"

CONVERSATIONS: dict[str, list[Line]] = {
    QUICK: [
        Line("normal", "Hello there, can you hear me clearly?"),
        Line("barge_in", "Sorry to interrupt, what is your name?", delay_s=0.8),
        Line(
            "hesitation",
            "I need three things, | bread, | milk and some eggs.",
            pauses_ms=(650, 800),
        ),
    ],
    "small-talk": [
        Line("normal", "Hi, how are you doing today?"),
        Line("normal", "What do you like to do on a rainy afternoon?"),
        Line("barge_in", "Sorry, could you keep it shorter please?", delay_s=1.0),
        Line("silence", duration_s=3.0, noise_dbfs=-35.0),
        Line("normal", "Tell me something nice about the ocean."),
        Line("silence", duration_s=1.5, noise_dbfs=-30.0, trigger="during_reply", delay_s=0.5),
        Line("normal", "Thank you, goodbye for now."),
    ],
    "questions": [
        Line("normal", "What is the capital city of France?"),
        Line("noise", "How many legs does a spider have?", snr_db=20.0),
        Line("noise", "Why is the sky blue during the day?", snr_db=10.0),
        Line("barge_in", "Wait, explain it like I am five years old.", delay_s=0.7),
        Line("noise", "What is the tallest mountain in the world?", snr_db=5.0),
        Line("silence", duration_s=3.0),
    ],
    "booking": [
        Line("normal", "I would like to book a table for two people."),
        Line("normal", "Tomorrow evening at seven o'clock, please."),
        Line("barge_in", "Actually, can you make that three people?", delay_s=1.2),
        Line("noise", "Do you have a table near the window?", snr_db=10.0),
        Line("normal", "Great, thank you very much for your help."),
    ],
    # Real-speech patterns: pauses inside a sentence, one-word answers, a
    # backchannel over the reply, and a barge-in that opens with a short word.
    # The backchannels and short barge-ins start 0.3 s into the reply (their
    # speech 0.6 s in, after the clip's lead-in), so that a short reply is still
    # playing when they come.
    "ordering": [
        Line(
            "hesitation",
            "I would like to order, um, | a large pizza with | mushrooms, olives | "
            "and extra cheese, please.",
            pauses_ms=(700, 600, 850),
        ),
        Line("one_word", "Yes."),
        Line(
            "hesitation",
            "Could you tell me, uh, | what time the shop | closes tonight?",
            pauses_ms=(650, 800),
        ),
        Line("one_word", "Seven."),
        Line("normal", "Can you describe all the pizzas on your menu?"),
        Line("backchannel", "Okay.", delay_s=0.3),
        Line("normal", "Which one do you recommend, and why?"),
        Line("short_barge_in", "Wait, I only want mushrooms.", delay_s=0.3),
        Line("normal", "Thank you, that is everything."),
    ],
    "planning": [
        Line(
            "hesitation",
            "For the camping trip I am packing | a tent, | two sleeping bags | and a small stove.",
            pauses_ms=(600, 750, 900),
        ),
        Line("normal", "Tell me a long story about a night in the forest."),
        Line("backchannel", "Uh-huh.", delay_s=0.3),
        Line("one_word", "Tuesday."),
        Line(
            "hesitation",
            "I was thinking we could, um, | leave on Friday morning | and come back on Sunday.",
            pauses_ms=(800, 550),
        ),
        Line("normal", "Explain how to put up a tent, step by step."),
        Line("backchannel", "Yeah.", delay_s=0.3),
        Line("one_word", "No."),
        Line("normal", "What should we cook on the first evening?"),
        Line("short_barge_in", "Stop, that is too much detail.", delay_s=0.3),
    ],
}


def script_digest(script: dict[str, list[Line]] | None = None) -> str:
    """A hash of the script (default: the built-in one): part of the corpus' cache key."""
    chosen = CONVERSATIONS if script is None else script
    data = {name: [asdict(line) for line in lines] for name, lines in chosen.items()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
