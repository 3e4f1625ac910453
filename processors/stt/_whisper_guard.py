"""Checks on Whisper's output: repetition loops, runaway decoding, non-speech.

Whisper (tiny.en most of all) sometimes fails to stop on short clips and says
the same words again and again ("Side left" seven times, "9" eleven times), and
it can make words up from noise. These functions judge one decoded text; the
engine (:mod:`processors.stt._whisper_engine`) decides what to retry.

* **Repetition**: the most consecutive copies of any word n-gram, on words
  compared without case or punctuation ("Yes, yes. Yes." is three copies of
  "yes"), whether the whole text is one n-gram said twice or more ("9 9"), and
  whether it ends with a phrase of three or more words said twice ("... and a
  small stove and a small stove": Whisper saying the end of a long turn again).
  Whisper's own check, the zlib compression ratio of the text above 2.4, is
  applied as well: it catches long loops the word check misses (a cycle that
  varies a little).
* **Length**: a pass decodes at most :func:`token_budget` tokens, what the audio
  can hold at a fast speaking rate; a pass that used them all did not stop by
  itself.
* **Non-speech**: Whisper's rule, a no-speech probability above the threshold
  together with an average token log-probability under -1.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

__all__ = [
    "COMPRESSION_RATIO_LIMIT",
    "Verdict",
    "collapse_repeats",
    "compression_ratio",
    "judge",
    "most_copies",
    "token_budget",
]

COMPRESSION_RATIO_LIMIT = 2.4  # Whisper's threshold for a looping output
MAX_COPIES = 2  # more consecutive copies of an n-gram than this is a loop
TAIL_PHRASE_WORDS = 3  # a text ending with a phrase this long (or longer) twice is a loop
_TOKENS_BASE = 8  # punctuation and a word or two, whatever the length
_TOKENS_PER_S = 7.0  # above a fast speaking rate (~5 words/s, ~1.3 tokens a word)
_LOGPROB_FLOOR = -1.0  # Whisper's average log-probability threshold
_KEY = re.compile(r"[^\w']+")


def token_budget(audio_s: float) -> int:
    """The most tokens ``audio_s`` seconds of speech can give, with a margin."""
    return _TOKENS_BASE + math.ceil(_TOKENS_PER_S * max(audio_s, 0.0))


def _keys(words: list[str]) -> list[str]:
    return [_KEY.sub("", w.lower()) for w in words]


def _runs(keys: list[str]) -> list[tuple[int, int, int]]:
    """Each tandem repeat as (start, n-gram size, copies), longest n-grams first."""
    runs = []
    for n in range(len(keys) // 2, 0, -1):
        start = 0
        while start + 2 * n <= len(keys):
            copies = 1
            while (
                start + (copies + 1) * n <= len(keys)
                and keys[start + copies * n : start + (copies + 1) * n] == keys[start : start + n]
            ):
                copies += 1
            if copies > 1:
                runs.append((start, n, copies))
                start += copies * n
            else:
                start += 1
    return runs


def most_copies(text: str) -> int:
    """The most consecutive copies of any word n-gram in ``text`` (1 when nothing repeats)."""
    return max((copies for _, _, copies in _runs(_keys(text.split()))), default=1)


def _whole_repeat(keys: list[str]) -> bool:
    """Whether the words are one n-gram said at least twice (a last copy may be cut short)."""
    for n in range(1, len(keys) // 2 + 1):
        if all(keys[k] == keys[k % n] for k in range(len(keys))):
            return True
    return False


def _tail_repeat(keys: list[str]) -> bool:
    """Whether the words end with the same phrase of ``TAIL_PHRASE_WORDS`` or more words twice."""
    return any(keys[-2 * n : -n] == keys[-n:] for n in range(TAIL_PHRASE_WORDS, len(keys) // 2 + 1))


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (Whisper's loop measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a decoded text looks like: a loop, non-speech, or neither."""

    looping: bool
    non_speech: bool

    @property
    def clean(self) -> bool:
        """Neither a loop nor non-speech: the text can be used as it is."""
        return not self.looping and not self.non_speech


def judge(
    text: str,
    *,
    tokens: int,
    budget: int,
    no_speech_prob: float,
    avg_logprob: float,
    no_speech_threshold: float,
) -> Verdict:
    """Judge one decoded text (``tokens`` long, out of a ``budget``)."""
    keys = [k for k in _keys(text.split()) if k]
    looping = (
        tokens >= budget
        or most_copies(text) > MAX_COPIES
        or (len(keys) > 1 and _whole_repeat(keys))
        or _tail_repeat(keys)
        or compression_ratio(text) > COMPRESSION_RATIO_LIMIT
    )
    non_speech = no_speech_prob > no_speech_threshold and avg_logprob < _LOGPROB_FLOOR
    return Verdict(looping=looping, non_speech=non_speech)


def collapse_repeats(text: str, *, runaway: bool = False) -> str:
    """Keep one copy of each loop: a run of more than two copies, or one the text ends in.

    "side left side left side left side" becomes "side left" (the text ends
    inside a further copy: the decoding was cut short in a loop); "bye bye" stays.
    Words keep their first spelling and punctuation. ``runaway`` (the decoding
    used its whole token budget) also drops every word after the first loop: a
    decoder caught in a loop says nothing more of the audio.
    """
    words = text.split()
    keys = _keys(words)
    runs = _runs(keys)
    if runaway:
        loops = [start + n for start, n, copies in runs if copies > MAX_COPIES]
        if loops:
            words = words[: min(loops)]
            keys = keys[: len(words)]
            runs = _runs(keys)
    keep = [True] * len(words)
    for start, n, copies in sorted(runs, key=lambda r: (-r[1] * r[2], r[1])):
        end = start + copies * n
        if not all(keep[start:end]):
            continue  # overlaps a repeat already collapsed
        tail = end
        while tail < len(keys) and tail - end < n and keys[tail] == keys[start + tail - end]:
            tail += 1
        cut_short = tail == len(keys) and tail > end
        if copies > MAX_COPIES or cut_short:
            for k in range(start + n, tail if cut_short else end):
                keep[k] = False
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)
