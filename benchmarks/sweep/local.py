"""The local executor: the cells one after another on this machine.

One cell at a time, so a cell's real-time measurements never share the CPUs with
another cell's. Ctrl-C (or SIGTERM, within :func:`sigterm_interrupts`) stops the
cell in progress, which is not kept, and returns; every cell that finished before
is already on disk.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from benchmarks.sweep.cells import CellOutput, CellSpec, run_cell

__all__ = ["INTERRUPTED_CODES", "OnOutput", "run_local", "sigterm_interrupts"]

OnOutput = Callable[[CellSpec, CellOutput], None]
INTERRUPTED_CODES = (130, 143)
"""Exit codes of a bench stopped by SIGINT or SIGTERM."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM stops the sweep as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_local(
    specs: Sequence[CellSpec],
    on_output: OnOutput,
    runner: Callable[[CellSpec], CellOutput] | None = None,
) -> bool:
    """Run the cells in order, handing each output to ``on_output``; False if interrupted.

    ``runner`` runs one cell (default :func:`~benchmarks.sweep.cells.run_cell`).
    """
    run = runner or run_cell
    try:
        for spec in specs:
            output = run(spec)
            on_output(spec, output)
            if output.exit_code in INTERRUPTED_CODES:
                return False
    except KeyboardInterrupt:
        return False
    return True
