"""The checks on Whisper's output (no model): loops, runaway length, non-speech."""

from __future__ import annotations

import pytest

from processors.stt._whisper_guard import (
    collapse_repeats,
    compression_ratio,
    judge,
    most_copies,
    token_budget,
)

SIDE_LEFT_LOOP = " ".join(["side left"] * 10 + ["side"] * 4)


def _judge(text: str, *, tokens: int = 3, budget: int = 20, nsp: float = 0.1, lp: float = -0.3):
    return judge(
        text,
        tokens=tokens,
        budget=budget,
        no_speech_prob=nsp,
        avg_logprob=lp,
        no_speech_threshold=0.6,
    )


def test_most_copies_counts_consecutive_ngrams_without_case_or_punctuation() -> None:
    assert most_copies("Yes, yes. Yes.") == 3
    assert most_copies("side left side left side left") == 3
    assert most_copies("turn off the lights") == 1
    assert most_copies("no, I said no") == 1  # not consecutive
    assert most_copies("") == 1


@pytest.mark.parametrize(
    "text",
    [
        "wait wait wait",
        "9 9",  # the whole text is one word said twice
        "Yes. Yes.",
        SIDE_LEFT_LOOP,
        "I think that I think that",
        # the end of a long turn said again (tiny.en on an 8 s window, a corpus turn)
        "for the camping trip i am packing a tent two sleeping bags and a small stove "
        "and a small stove",
        "Book it for Friday at seven, Friday at seven.",
    ],
)
def test_loops_are_judged_looping(text: str) -> None:
    verdict = _judge(text)
    assert verdict.looping
    assert not verdict.clean


@pytest.mark.parametrize(
    "text",
    [
        "Side left.",
        "no, no, I said the red one",
        "Turn off the lights.",
        "",
        "9",
        "That is all. Thank you, thank you.",  # a two-word phrase twice is speech
        "I said the red one, the red one, please.",  # repeated, but not at the end
    ],
)
def test_ordinary_text_is_clean(text: str) -> None:
    assert _judge(text).clean


def test_using_the_whole_token_budget_is_a_loop() -> None:
    assert _judge("one two three four", tokens=20, budget=20).looping
    assert not _judge("one two three four", tokens=19, budget=20).looping


def test_compression_ratio_flags_long_cycles() -> None:
    cycle = "the cat sat on the mat and then the dog came " * 8
    assert compression_ratio(cycle) > 2.4
    assert _judge(cycle, tokens=40, budget=200).looping
    assert compression_ratio("I would like to order a large pizza with mushrooms") < 2.4


def test_non_speech_is_whispers_rule() -> None:
    assert _judge("you", nsp=0.95, lp=-2.1).non_speech
    assert not _judge("you", nsp=0.95, lp=-0.5).non_speech  # a confident word
    assert not _judge("you", nsp=0.3, lp=-2.1).non_speech  # an unsure word in speech


def test_token_budget_grows_with_the_audio() -> None:
    assert token_budget(0.0) == 8
    assert token_budget(1.4) == 8 + 10
    assert token_budget(30.0) == 8 + 210
    assert token_budget(10.0) > 30  # room for a fast 10 s sentence


@pytest.mark.parametrize(
    ("text", "runaway", "expected"),
    [
        ("side left side left side left side", False, "side left"),
        (SIDE_LEFT_LOOP, True, "side left"),
        ("Yes, yes. Yes. Yes. Yes.", False, "Yes,"),
        ("wait wait wait wait", False, "wait"),
        ("bye bye", False, "bye bye"),  # two copies and nothing cut short: kept
        ("well no no no", False, "well no"),
        ("no no no, I said yes yes yes", False, "no I said yes"),
        ("no no no, I said yes", True, "no"),  # a runaway says nothing after its loop
        ("Turn off the lights.", True, "Turn off the lights."),
    ],
)
def test_collapse_keeps_one_copy_of_a_loop(text: str, runaway: bool, expected: str) -> None:
    assert collapse_repeats(text, runaway=runaway) == expected
