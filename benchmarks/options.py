"""Command-line options the benchmarks share, one group per family.

* :func:`add_corpus_options`: the benchmarks that play the corpus through pipeline
  files (``parley bench``, ``parley bench sweep``): which pipelines, which part of
  the corpus, which overrides, where the results go.
* :func:`add_server_options`: the benchmarks that talk to a ``parley serve`` they
  start themselves (``benchmarks.load``, ``benchmarks.soak``): the pipeline it
  serves, its overrides, where the figures go.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_corpus_options", "add_server_options", "at_least_one"]


def at_least_one(text: str) -> int:
    """An argparse ``type``: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_corpus_options(parser: argparse.ArgumentParser, *, out_default: str) -> None:
    """Pipelines, overrides, corpus selection, output folder and plots.

    The values are read by :mod:`benchmarks.latency.selection`; ``out_default``
    describes the output folder used when ``--out`` is not given.
    """
    parser.add_argument(
        "pipelines",
        nargs="*",
        help="pipeline files or shipped names (default: cascade-local realtime-local, "
        "and the OpenAI ones when OPENAI_API_KEY is set)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a pipeline setting (e.g. llm.n_threads=1) in every pipeline that has "
        "that table (repeatable)",
    )
    corpus = parser.add_argument_group("what is played")
    corpus.add_argument("--quick", action="store_true", help="one short conversation (~1 min)")
    corpus.add_argument(
        "--corpus", type=Path, help="folder with manifest.jsonl and WAVs (default: built-in)"
    )
    corpus.add_argument(
        "--conversation",
        action="append",
        default=[],
        help="run only this conversation of the corpus (repeatable)",
    )
    corpus.add_argument(
        "--turns",
        type=at_least_one,
        help="play only the first N user turns of each conversation",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help=f"output folder (default: {out_default})")
    output.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The pipeline the started ``parley serve`` runs, its overrides, and the JSON report."""
    server = parser.add_argument_group("the server")
    server.add_argument("--pipeline", default="cascade-local", help="cascade pipeline to serve")
    server.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of that pipeline (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
