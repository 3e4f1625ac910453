"""The C allocator setting a long-running server needs: freed buffers go back to the system.

glibc serves an allocation above the *mmap threshold* (128 KiB at first) with
its own ``mmap`` and unmaps it when freed. But when such a block is freed, glibc
raises the threshold to its size (up to 32 MiB), so from then on the next
buffers of that size come from the malloc arenas instead, one arena per busy
thread, and arenas keep their free memory. A server whose sessions run Whisper
passes, Piper syntheses and audio conversions on whatever worker thread is free
thus grows by tens of MiB after every burst of sessions and never shrinks:
measured with ``python -m benchmarks.soak`` (20 sessions per cycle), idle RSS
rose ~20 MiB per cycle with the dynamic threshold and ~4 MiB with it fixed
(see RESULTS.md).

:func:`fix_mmap_threshold` sets the threshold once, which also turns its
adjustment off, so large transient buffers are always unmapped when freed.
What smaller blocks leave free inside the arenas is given back by
:func:`trim_free_memory` (glibc's ``malloc_trim``), which the server runs after
each session ends. A session's cancelled tasks also leave reference cycles
(exceptions whose tracebacks hold the frames that hold them) that keep their
frames' buffers until Python's next full collection; the server runs one when
its last session has ended, so idle memory comes back at once.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold", "trim_free_memory"]

log = logging.getLogger("parley.serve")

MMAP_THRESHOLD = 128 * 1024
"""glibc's initial value: buffers from 128 KiB up are mapped and unmapped."""
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h


def _glibc(name: str) -> Any:
    """A glibc function, or None elsewhere (another OS, or musl, which has neither)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    log.debug("mmap threshold fixed at %d bytes: %s", threshold, done)
    return done


def trim_free_memory() -> bool:
    """Give the free pages of every malloc arena back to the system; blocking, a few ms."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
