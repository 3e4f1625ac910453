"""Process-wide settings for a process that runs many sessions: the garbage collector.

CPython frees most objects by reference counting; its cyclic collector runs on
top, by generations. A young collection runs every ``threshold0`` net container
allocations (700 by default) and moves what it finds alive to the middle
generation; enough of those set off a full collection, which walks every
tracked object of the process. With many sessions at once, the frames, buffers
and tasks in flight when a young collection runs are promoted, and the
promotions set off full collections of every session's objects: with 1,000
paced output sessions (about 200,000 objects) CPython ran 17 full collections
in 10 s, up to 94 ms each, during which no session's audio was written
(``benchmarks/RESULTS.md``, "Scenario d").

:func:`tune_gc` raises the young threshold. Young collections then run about
14 times less often, so far fewer objects in flight are caught and promoted,
and full collections become rare. Each young collection walks at most a few
thousand more objects (well under a millisecond). It changes when cycles are
collected, not whether: a cycle lives until the next young collection instead
of the one after 700 allocations.

``parley serve`` and ``parley talk`` call it at start
(``--option gc_threshold=N`` for the server; 0 keeps Python's thresholds).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

YOUNG_THRESHOLD = 10_000
"""The young threshold :func:`tune_gc` sets by default: the smallest round value with
which 1,000 paced sessions kept every chunk within 20 ms in scenario d."""


def tune_gc(young: int = YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Set the collector's young threshold to ``young``; return the thresholds before.

    0 leaves the thresholds as they are. The middle and old thresholds are kept.
    Restore with ``gc.set_threshold(*before)``.
    """
    if young < 0:
        raise ValueError(f"the young threshold must be 0 (keep) or positive, got {young}")
    before = gc.get_threshold()
    if young:
        gc.set_threshold(young, before[1], before[2])
    return before
