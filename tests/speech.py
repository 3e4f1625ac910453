"""Speech for the tests: Piper clips with their true bounds, and noise to mix under them.

The synthesis is the one the benchmarks measure with (:mod:`benchmarks.speech`),
so a test and a benchmark speaking the same text hear the same audio.
"""

from __future__ import annotations

from benchmarks.speech import (
    SENTENCES,
    Utterance,
    make_noise,
    speech_bounds,
    synthesize_speech,
    utterances,
)

__all__ = [
    "SENTENCES",
    "Utterance",
    "make_noise",
    "speech_bounds",
    "synthesize_speech",
    "utterances",
]
