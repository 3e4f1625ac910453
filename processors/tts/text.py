"""Streaming text splitter: cut a reply arriving token by token into speakable pieces.

Speech synthesis starts as soon as a piece is complete, so where the stream is
cut decides the time to first audio. :class:`SentenceSplitter` cuts at sentence
ends (``.``, ``!``, ``?``, and line breaks) and, for the *first* piece of a
reply only, also at clause boundaries (``,``, ``;``, ``:``) once the piece holds
a few words: the voice can start on "Sure, the capital of France is Paris," while
the model is still writing the rest.

A cut is only made where the punctuation is followed by whitespace, so a cut
never falls inside a word: decimals (``3.5``), thousands (``1,000``) and times
(``10:30``) stay whole, and common abbreviations (``Mr.``, ``e.g.``, ``etc.``)
are not taken for sentence ends. Because a decision at a boundary depends only
on the text up to the whitespace after it, the pieces are the same however the
text was chunked. Pieces are returned stripped of surrounding whitespace.
"""

from __future__ import annotations

__all__ = ["ABBREVIATIONS", "SentenceSplitter", "split_text"]

_SENTENCE_END = frozenset(".!?…")
_CLAUSE_END = frozenset(",;:")
_CLOSERS = frozenset("\"')]}\u00bb\u201d\u2019")
_OPENERS = "\"'([{\u00ab\u201c\u2018"

ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "approx",
        "no",
        "fig",
        "vol",
        "dept",
        "est",
        "inc",
        "ltd",
        "co",
        "corp",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)
"""Lower-case words that end with a dot without ending a sentence (``Mr.``, ``etc.``).

Tokens with an inner dot (``e.g.``, ``i.e.``, ``a.m.``, ``U.S.``) are recognised
without being listed.
"""


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the single ``.`` at ``text[dot]`` ends an abbreviation, not a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    token = text[start:dot].lstrip(_OPENERS)
    if not token:
        return False
    if "." in token:  # e.g. / i.e. / a.m. / U.S.
        return all(part.isalpha() and len(part) <= 2 for part in token.split("."))
    return token.lower() in ABBREVIATIONS


class SentenceSplitter:
    """Feed text chunks with :meth:`feed`; get back every piece that is now complete.

    ``first_clause_min_words`` lets the first piece of a reply end at a clause
    boundary (``, ; :``) once it holds at least that many words (None: never).
    ``first_piece_max_words`` ends the first piece after that many words when no
    boundary came sooner (None: never), so a reply without early punctuation
    starts sounding after a few words instead of a whole sentence.
    Later pieces end at sentence boundaries only, which sound more natural.
    Call :meth:`flush` at the end of the reply for the rest, and :meth:`reset`
    to drop everything (after an interruption). After either, the next piece is
    a *first* piece again.
    """

    __slots__ = ("_buffer", "_first", "_first_clause_min_words", "_first_piece_max_words")

    def __init__(
        self, first_clause_min_words: int | None = 4, first_piece_max_words: int | None = None
    ) -> None:
        """Create a splitter; see the class docstring for the two settings."""
        for name, value in (
            ("first_clause_min_words", first_clause_min_words),
            ("first_piece_max_words", first_piece_max_words),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, got {value}")
        self._first_clause_min_words = first_clause_min_words
        self._first_piece_max_words = first_piece_max_words
        self._buffer = ""
        self._first = True

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a piece."""
        return self._buffer

    @property
    def at_first_piece(self) -> bool:
        """True while the next piece returned will be the first of a reply."""
        return self._first

    def feed(self, text: str) -> list[str]:
        """Add ``text`` and return the pieces it completes, in order (possibly none)."""
        if not isinstance(text, str):
            raise TypeError(f"feed() takes text (str), got {type(text).__name__}")
        self._buffer += text
        pieces: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                return pieces
            piece = self._buffer[:cut].strip()
            self._buffer = self._buffer[cut:]
            if piece:
                pieces.append(piece)
                self._first = False

    def flush(self) -> list[str]:
        """End the reply: return the remaining text as a last piece (if any) and reset."""
        rest = self._buffer.strip()
        self.reset()
        return [rest] if rest else []

    def reset(self) -> None:
        """Forget any pending text; the next piece is the first of a new reply."""
        self._buffer = ""
        self._first = True

    def _find_cut(self) -> int | None:
        """Index just past the first complete piece in the buffer, or None."""
        cut = self._find_boundary()
        if self._first and self._first_piece_max_words is not None:
            # Whichever comes first: a boundary, or the space after the Nth word. The
            # choice depends only on the text up to that point, so chunking cannot change it.
            limit = _after_words(self._buffer, self._first_piece_max_words)
            if limit is not None and (cut is None or limit < cut):
                return limit
        return cut

    def _find_boundary(self) -> int | None:
        buf = self._buffer
        n = len(buf)
        min_words = self._first_clause_min_words if self._first else None
        i = 0
        while i < n:
            ch = buf[i]
            if ch == "\n":
                if buf[:i].strip():
                    return i
            elif ch in _SENTENCE_END:
                j = i
                while j < n and buf[j] in _SENTENCE_END:
                    j += 1
                single_dot = ch == "." and j - i == 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j < n and buf[j].isspace() and not (single_dot and _is_abbreviation(buf, i)):
                    return j
                i = j
                continue
            elif ch in _CLAUSE_END and min_words is not None:
                j = i + 1
                while j < n and buf[j] in _CLOSERS:
                    j += 1
                if j < n and buf[j].isspace() and len(buf[:i].split()) >= min_words:
                    return j
            i += 1
        return None


def _after_words(text: str, count: int) -> int | None:
    """Index just past the whitespace that follows the ``count``-th word, or None."""
    words = 0
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return None
        while i < n and not text[i].isspace():
            i += 1
        if i == n:
            return None  # the word may go on in the next chunk
        words += 1
        if words == count:
            return i + 1
    return None


def split_text(
    text: str, first_clause_min_words: int | None = 4, first_piece_max_words: int | None = None
) -> list[str]:
    """Split a whole text into the pieces a :class:`SentenceSplitter` would return."""
    splitter = SentenceSplitter(first_clause_min_words, first_piece_max_words)
    return [*splitter.feed(text), *splitter.flush()]
