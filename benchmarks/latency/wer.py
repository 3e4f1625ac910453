"""Word error rate over normalised words.

Normalisation lowercases, turns hyphens into spaces, drops punctuation (keeping
apostrophes inside words) and spells out single digits, so "Seven o'clock." and
"7 o'clock" are the same words. WER is (substitutions + deletions + insertions)
divided by the number of reference words, from a word-level edit distance.
"""

from __future__ import annotations

import re

__all__ = ["edit_distance", "normalize_words", "wer"]

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
_DIGITS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
}


def normalize_words(text: str) -> list[str]:
    """The words of ``text``, lowercased, without punctuation, digits spelled out."""
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    return [_DIGITS.get(token, token) for token in _TOKEN.findall(text)]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Minimum substitutions, deletions and insertions turning one list into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (0.0 is perfect; may exceed 1)."""
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else float(len(hyp))
    return edit_distance(ref, hyp) / len(ref)
