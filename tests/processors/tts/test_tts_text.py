"""The streaming sentence/clause splitter: examples and properties over arbitrary chunkings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.tts.text import SentenceSplitter, split_text

ENDERS = set(".!?\u2026,;:\"')]}\u00bb\u201d\u2019")


def feed_chunks(
    text: str, cuts: list[int], min_words: int | None = 4, max_words: int | None = None
) -> list[str]:
    splitter = SentenceSplitter(min_words, max_words)
    pieces: list[str] = []
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    for a, b in itertools.pairwise(bounds):
        pieces += splitter.feed(text[a:b])
    return pieces + splitter.flush()


def test_sentences_and_a_first_clause() -> None:
    text = "Well, the capital of France is Paris, a lovely city, I think. It is big! Is it? Yes."
    assert split_text(text) == [
        "Well, the capital of France is Paris,",
        "a lovely city, I think.",
        "It is big!",
        "Is it?",
        "Yes.",
    ]


def test_short_first_clause_waits_for_enough_words() -> None:
    assert split_text("Sure, I can help you with that.") == ["Sure, I can help you with that."]
    assert split_text("Sure, I can help, of course.") == ["Sure, I can help,", "of course."]
    assert split_text("Sure, I can help, of course.", None) == ["Sure, I can help, of course."]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith met Dr. Jones at 3.5 past noon.",
        "Bring fruit, e.g. apples, i.e. red ones.",
        "It costs 1,000 dollars at 10:30 sharp.",
        "Pi is about 3.14159 and e is 2.718.",
        "See the U.S. Army etc. for details.",
    ],
)
def test_abbreviations_decimals_and_numbers_stay_whole(text: str) -> None:
    assert split_text(text, None) == [text]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert split_text('He said "hi." Then he left.') == ['He said "hi."', "Then he left."]


def test_line_breaks_end_pieces() -> None:
    assert split_text("First item\n\n- second item\nthird") == [
        "First item",
        "- second item",
        "third",
    ]


def test_pieces_come_as_soon_as_the_whitespace_after_them_arrives() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there.") == []
    assert splitter.feed(" How") == ["Hello there."]
    assert splitter.feed(" are you?") == []
    assert splitter.pending == " How are you?"
    assert splitter.flush() == ["How are you?"]
    assert splitter.pending == ""


def test_reset_makes_the_next_piece_a_first_piece_again() -> None:
    splitter = SentenceSplitter(2)
    assert splitter.feed("One two, three four, five. ") == ["One two,", "three four, five."]
    assert not splitter.at_first_piece
    splitter.feed("dropped, text")
    splitter.reset()
    assert splitter.at_first_piece
    assert splitter.feed("Again this, and that. ") == ["Again this,", "and that."]


def test_a_first_piece_without_punctuation_ends_after_a_few_words() -> None:
    assert split_text("The capital of France is Paris. It is big.", 4, 4) == [
        "The capital of France",
        "is Paris.",
        "It is big.",
    ]
    # A boundary before the word limit wins; later pieces are whole sentences.
    assert split_text("Hi there. The capital of France is Paris.", 4, 3) == [
        "Hi there.",
        "The capital of France is Paris.",
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="first_clause_min_words"):
        SentenceSplitter(0)
    with pytest.raises(TypeError, match="str"):
        SentenceSplitter().feed(b"bytes")  # type: ignore[arg-type]


texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("ab Mr.e.g3,;:!?\n\t\"')\u2026 ")),
        st.characters(codec="utf-8"),
    ),
    max_size=120,
)


@given(
    texts,
    st.lists(st.integers(min_value=0, max_value=200), max_size=12),
    st.booleans(),
    st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
)
def test_any_chunking_gives_the_same_pieces_and_keeps_every_word(
    text: str, cuts: list[int], clauses: bool, max_words: int | None
) -> None:
    min_words = 4 if clauses else None
    pieces = feed_chunks(text, cuts, min_words, max_words)
    assert pieces == split_text(text, min_words, max_words)
    # Nothing lost, nothing added, no word cut in two.
    assert " ".join(pieces).split() == text.split()
    assert "".join("".join(pieces).split()) == "".join(text.split())
    # Every piece is stripped and not empty; every cut but the last is at a boundary.
    pos = 0
    for i, piece in enumerate(pieces):
        assert piece and piece == piece.strip()
        start = text.find(piece, pos)
        assert start >= pos
        pos = start + len(piece)
        if i < len(pieces) - 1:
            assert text[pos].isspace()
            gap = text[pos : text.find(pieces[i + 1], pos)]
            first_cut_by_count = i == 0 and max_words is not None
            assert piece[-1] in ENDERS or "\n" in gap or first_cut_by_count
