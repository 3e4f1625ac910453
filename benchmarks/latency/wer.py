"""Word error rate over normalised words, comparable with published Whisper-style figures.

Both texts go through the English text normaliser that Whisper's evaluations use
(``EnglishTextNormalizer``, packaged on PyPI as ``whisper-normalizer``, in the
``bench`` extra): lowercase, no punctuation, British spellings made American,
contractions and abbreviations expanded ("Mr" is "mister", "we're" is "we
are"), fillers ("um", "uh") dropped, and spelled-out numbers written in digits
("twenty nine" is "29", "two nine three four zero" is "29340", "seven" is "7").

One rule is added on top, so that a digit string reads the same however it was
written: that normaliser joins spelled-out digits into one number but leaves
written digits apart ("2 9 3 4 0"), and it spells out a lone "1" as "one"
("1 2 3" becomes "one 2 3" while "one two three" becomes "123"). So a "one"
next to a digit string is taken as the digit 1, and adjacent digit strings are
joined: "2 9 3 4 0", "29340" and "two nine three four zero" are all the one
word "29340" (the normaliser's own reading of the spelled-out digits). A piece
with no letter or digit (a lone "." the normaliser leaves from an ellipsis) is
not counted as a word.

WER is (substitutions + deletions + insertions) divided by the number of
reference words, from a word-level edit distance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

__all__ = ["edit_distance", "normalize_words", "wer"]


@functools.cache
def _normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as exc:
        raise ImportError(
            "WER needs the English text normaliser of the whisper-normalizer package: install "
            "the bench extra (pip install -e '.[bench]')"
        ) from exc
    return EnglishTextNormalizer()  # type: ignore[no-any-return]


def _join_digits(words: list[str]) -> list[str]:
    """Join digit strings and "one"s in a row into one number ("one" alone stays a word)."""
    out: list[str] = []
    run: list[str] = []  # digit strings and "one"s in a row
    for word in [*words, ""]:
        if word.isdigit() or word == "one":
            run.append(word)
            continue
        if len(run) > 1 or any(w.isdigit() for w in run):
            out.append("".join("1" if w == "one" else w for w in run))
        else:
            out += run
        run = []
        if word:
            out.append(word)
    return out


def normalize_words(text: str) -> list[str]:
    """The words of ``text`` after the Whisper English normaliser and the digit rule.

    A piece without a letter or digit is not a word: the normaliser leaves a
    lone "." from an ellipsis ("Wait..." gives "wait ."), dropped here.
    """
    words = [w for w in _normalizer()(text).split() if any(c.isalnum() for c in w)]
    return _join_digits(words)


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
