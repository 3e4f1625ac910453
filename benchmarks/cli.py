"""Latency benchmark: cascade against speech-to-speech (also `overhead` and `sweep`).

Registered with ``parley`` as an entry point (``parley.commands`` in
``pyproject.toml``), so the pipelines package never imports the benchmarks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run ``parley bench`` with the arguments after ``bench``."""
    rest = list(argv)
    if rest[:1] == ["overhead"]:
        from benchmarks.overhead import main as overhead_main

        return overhead_main(rest[1:])
    if rest[:1] == ["sweep"]:
        from benchmarks.sweep.cli import main as sweep_main

        return sweep_main(rest[1:])
    from benchmarks.latency.cli import main as latency_main

    return latency_main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
