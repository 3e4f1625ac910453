"""The tables of ``python -m benchmarks.turn.measure``: what each rule lets end, counted.

Synthetic scores on placeholder clips: the counting, not the models, is under test.
"""

from __future__ import annotations

import numpy as np

from benchmarks.turn.corpus import Clip
from benchmarks.turn.measure import Scores, combined, overruled

# (kind, Smart Turn, words)
CLIPS = [
    ("complete", 0.9, 1e-2),  # let through by both
    ("complete", 0.9, 1e-8),  # held back by the words
    ("complete", 0.1, 5e-3),  # held back by Smart Turn, freed from 1e-3 on
    ("complete", 0.2, 2e-4),  # held back by Smart Turn, freed at 1e-4 only
    ("filler", 0.1, 5e-4),  # held back by Smart Turn, freed at 1e-4 and 3e-4
    ("text-cut", 0.9, 2e-7),  # let through by Smart Turn, caught from 3e-7 on
]


def _scores() -> tuple[list[Clip], Scores, Scores]:
    clips = [Clip(i, kind, "x", np.zeros(1)) for i, (kind, _, _) in enumerate(CLIPS)]  # type: ignore[arg-type]
    smart = Scores("smart_turn", [s for _, s, _ in CLIPS], [0.0] * len(CLIPS))
    words = Scores("words", [w for _, _, w in CLIPS], [0.0] * len(CLIPS))
    return clips, smart, words


def _rows(table: str) -> dict[str, tuple[int, int]]:
    rows = {}
    for line in table.splitlines()[2:]:
        label, complete, incomplete = (cell.strip() for cell in line.strip("|").split("|"))
        rows[label] = (int(complete), int(incomplete))
    return rows


def test_overruled_counts_what_the_words_free_among_the_clips_smart_turn_holds_back() -> None:
    table = overruled(*_scores())
    assert "(of 2)" in table and "(of 1)" in table  # held back: 2 complete, 1 incomplete
    assert _rows(table) == {
        "1e-04": (2, 1),
        "3e-04": (1, 1),
        "0.001": (1, 0),
        "0.003": (1, 0),
        "0.010": (0, 0),
    }


def test_combined_counts_what_ends_when_both_opinions_call_it_complete() -> None:
    rows = _rows(combined(*_scores()))
    assert rows["none (Smart Turn alone)"] == (2, 1)
    assert rows["1e-07"] == (1, 1)
    assert rows["3e-07"] == (1, 0)
