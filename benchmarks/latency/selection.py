"""What a bench run plays: its pipelines, their overrides, the corpus and its conversations.

``parley bench`` and ``parley bench sweep`` choose the same way from the same
options (:func:`benchmarks.options.add_corpus_options`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency.corpus import Corpus, CorpusConversation, CorpusError, load_corpus

__all__ = [
    "CLOUD",
    "LOCAL",
    "choose_conversations",
    "default_pipelines",
    "load_chosen_corpus",
    "overrides_for",
]

LOCAL = ("cascade-local", "realtime-local")
"""The shipped pipelines a bench runs when none is named."""
CLOUD = ("cascade-openai", "realtime-openai")
"""Added to :data:`LOCAL` when ``OPENAI_API_KEY`` is set."""


def default_pipelines() -> list[str]:
    """The shipped pipelines a bench runs when none is named."""
    names = list(LOCAL)
    if os.environ.get("OPENAI_API_KEY"):
        names += CLOUD
    from pipelines.shipped import SHIPPED

    return [n for n in names if (SHIPPED / f"{n}.toml").is_file()]


def overrides_for(path: Path, overrides: Sequence[str]) -> list[str]:
    """The overrides whose top-level table exists in the pipeline file."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return list(overrides)
    return [o for o in overrides if o.split("=", 1)[0].split(".", 1)[0].strip() in tables]


def load_chosen_corpus(folder: Path | None, console: Any) -> Corpus:
    """The corpus in ``folder``, or the built-in one (generated once with Piper, cached)."""
    if folder is not None:
        return load_corpus(folder)
    from benchmarks.latency.generate import builtin_corpus

    with console.status("preparing the built-in corpus (generated once with Piper, cached)"):
        built = builtin_corpus()
    return load_corpus(built, source="builtin")


def choose_conversations(
    corpus: Corpus, names: Sequence[str], *, quick: bool, turns: int | None
) -> list[CorpusConversation]:
    """The conversations to play: those ``names`` (all when empty), cut to ``turns``.

    ``quick`` picks the built-in quick conversation, or a user corpus's first
    conversation cut to its first 3 turns; raises CorpusError for an unknown name.
    """
    from benchmarks.latency.script import QUICK

    chosen = list(corpus.conversations)
    if names:
        known = {c.name for c in chosen}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CorpusError(f"no conversation {unknown[0]!r}; the corpus has {sorted(known)}")
        chosen = [c for c in chosen if c.name in names]
    elif corpus.source == "builtin":
        short = [c for c in chosen if c.name == QUICK]
        chosen = short if quick else [c for c in chosen if c.name != QUICK]
    elif quick:
        chosen = chosen[:1]
    if turns is not None:
        chosen = [c.head(turns) for c in chosen]
    if quick and turns is None and corpus.source != "builtin":
        chosen = [c.head(3) for c in chosen]
    return [c for c in chosen if c.items]
