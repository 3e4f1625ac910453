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
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold"]

log = logging.getLogger("parley.serve")

MMAP_THRESHOLD = 128 * 1024
"""glibc's initial value: buffers from 128 KiB up are mapped and unmapped."""
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    log.debug("mmap threshold fixed at %d bytes: %s", threshold, done)
    return done
