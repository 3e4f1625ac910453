"""WER scoring: Whisper's English normaliser plus one rule for digit strings."""

from __future__ import annotations

import pytest

from benchmarks.latency.wer import edit_distance, normalize_words, wer


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("two nine three four zero", "29340"),
        ("two nine three four zero", "2 9 3 4 0"),
        ("My code is 29340.", "my code is two nine three four zero"),
        ("one two three", "1, 2, 3"),
        ("nine one one", "9 1 1"),
        ("nine one one", "911"),
        ("Nine.", "9"),
        ("Forty two.", "42"),
        ("twenty nine thousand three hundred forty", "29,340"),
        ("I have one cat.", "I have 1 cat"),
    ],
)
def test_numbers_and_digits_agree_however_written(reference: str, hypothesis: str) -> None:
    assert wer(reference, hypothesis) == 0.0
    assert wer(hypothesis, reference) == 0.0


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("Mr. Smith is here.", "mister smith is here"),
        ("Dr Jones", "doctor jones"),
        ("Mrs. Lee", "missus lee"),
        ("St. James street", "saint james street"),
        ("We're late, aren't we?", "we are late are not we"),
        ("The colour grey.", "the color gray"),
        ("Seven o'clock, please!", "7 O'Clock - please"),
        ("Um, yes.", "yes"),
        ("Wait...", "wait"),
    ],
)
def test_abbreviations_spellings_and_punctuation(reference: str, hypothesis: str) -> None:
    assert wer(reference, hypothesis) == 0.0


def test_the_digit_rule_keeps_words_and_real_differences() -> None:
    assert normalize_words("Call 555 1234 now") == ["call", "5551234", "now"]
    assert normalize_words("one of them") == ["one", "of", "them"]  # "one" alone is a word
    assert normalize_words("...") == []
    # A wrong digit is a wrong word, not a free pass.
    assert wer("my code is two nine three four zero", "my code is 29341") == pytest.approx(0.25)
    assert wer("Nine.", "9 9") == 1.0  # a doubled digit is another number


def test_edit_counts() -> None:
    assert wer("a b c d", "a x c") == pytest.approx(0.5)  # one substitution, one deletion
    assert wer("a b", "a b c d") == pytest.approx(1.0)  # two insertions
    assert wer("", "") == 0.0
    assert wer("", "hello there") == 2.0
    assert edit_distance(["a", "b"], ["b", "a"]) == 2
