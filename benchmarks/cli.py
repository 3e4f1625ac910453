"""Latency benchmark: cascade against speech-to-speech (`parley bench overhead`: the engine's own).

Registered with ``parley`` as an entry point (``parley.commands`` in
``pyproject.toml``), so the pipelines package never imports the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run ``parley bench`` with the arguments after ``bench``."""
    rest = list(argv)
    if rest[:1] == ["overhead"]:
        from benchmarks.overhead import main as overhead_main

        return overhead_main(rest[1:])
    from benchmarks.latency.cli import main as latency_main

    return latency_main(rest)
