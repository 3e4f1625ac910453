"""Command line of bench sweeps (``parley bench sweep``).

::

    parley bench sweep [PIPELINES...] --grid KEY=V1,V2,... [--grid ...] [--set KEY=VALUE]
                       [--quick] [--corpus DIR] [--conversation NAME] [--turns N]
                       [--out DIR] [--ray auto|local|ADDRESS] [--no-plots]

Every configuration of the grid (the cartesian product of the ``--grid`` axes),
for every pipeline, over every conversation of the corpus, is one *cell*: a plain
``parley bench`` of one pipeline over one conversation. Cells run one at a time
here, or as Ray tasks that each hold a whole node. Each finished cell is stored at
once; running the same command again with the same ``--out`` skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.latency.selection import (
    choose_conversations,
    default_pipelines,
    load_chosen_corpus,
    overrides_for,
)
from benchmarks.options import add_corpus_options
from benchmarks.sweep.cells import CellOutput, CellSpec
from benchmarks.sweep.grid import Configuration, GridError, configurations, parse_grid

__all__ = ["Variant", "build_specs", "main", "resolve_pipeline", "run_sweep", "variants"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley bench sweep",
        description="Run a grid of pipeline settings over the corpus and report the Pareto "
        "front of voice-to-voice p50, WER and talk-overs. Re-run with the same --out to resume.",
        epilog="example: parley bench sweep cascade-local-fast --quick "
        "--grid vad.complete_stop_ms=150,200,300 --grid stt.backend=whisper,pocketsphinx",
    )
    add_corpus_options(parser, out_default="bench-results/sweep-<date-time>")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a setting and the values to try (repeatable: the sweep runs every combination)",
    )
    parser.add_argument(
        "--ray",
        metavar="auto|local|ADDRESS",
        help="run the cells as Ray tasks, one per node at a time: 'auto' joins this machine's "
        "cluster, 'local' starts one for the sweep, or a cluster address (needs .[sweep])",
    )
    return parser


@dataclass(frozen=True)
class Variant:
    """One pipeline under one configuration, validated."""

    path: Path
    name: str
    label: str
    overrides: list[str]


def variants(
    paths: Sequence[Path], grid: Sequence[Configuration], base: Sequence[str]
) -> list[Variant]:
    """Every pipeline under every configuration, configuration-major, each file validated.

    A grid setting whose table a pipeline lacks does not apply to it (as with
    ``parley bench --set``), so configurations that differ only there are one variant.
    Raises ConfigError naming the file and the setting that does not validate.
    """
    from pipelines.config import load_pipeline_file

    found: dict[tuple[Path, tuple[str, ...]], Variant] = {}
    for configuration in grid:
        for path in paths:
            applied = overrides_for(path, configuration.overrides)
            overrides = overrides_for(path, [*base, *applied])
            config = load_pipeline_file(path, overrides)
            label = " ".join(applied) or "as configured"
            found.setdefault(
                (path, tuple(overrides)), Variant(path, config.pipeline.name, label, overrides)
            )
    return list(found.values())


def build_specs(
    chosen: Sequence[Variant],
    conversations: Sequence[str],
    *,
    quick: bool = False,
    corpus: Path | None = None,
    corpus_digest: str = "",
    turns: int | None = None,
) -> list[CellSpec]:
    """Every variant over every conversation: the cells of the sweep."""
    from benchmarks.latency.environment import file_sha256

    return [
        CellSpec(
            pipeline_file=str(v.path.resolve()),
            pipeline_name=v.name,
            pipeline_sha256=file_sha256(v.path),
            label=v.label,
            overrides=v.overrides,
            conversation=conversation,
            quick=quick,
            corpus=None if corpus is None else str(corpus.resolve()),
            corpus_digest=corpus_digest,
            turns=turns,
        )
        for v in chosen
        for conversation in conversations
    ]


def resolve_pipeline(name_or_path: str) -> Path:
    """A pipeline file path, or the file of a shipped pipeline's name (as ``parley run``)."""
    from pipelines.shipped import resolve_pipeline as resolve

    return resolve(name_or_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``parley bench sweep``; 0 when every cell finished, 1 if some failed, 130 stopped."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        grid = configurations(parse_grid(args.grid))
    except GridError as exc:
        parser.error(str(exc))
    from rich.console import Console

    from benchmarks.latency.corpus import CorpusError
    from pipelines.config import ConfigError

    console = Console()
    paths = [resolve_pipeline(n) for n in (args.pipelines or default_pipelines())]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"parley bench sweep: no pipeline file {missing[0]}", file=sys.stderr)
        return 2
    try:
        chosen = variants(paths, grid, args.set)
        if args.ray:
            from benchmarks.sweep.ray_executor import check_address

            check_address(args.ray)
    except (ConfigError, RuntimeError) as exc:
        print(f"parley bench sweep: {exc}", file=sys.stderr)
        return 2
    try:
        corpus = load_chosen_corpus(args.corpus, console)
        chosen_conversations = choose_conversations(
            corpus, args.conversation, quick=args.quick, turns=args.turns
        )
        names = [c.name for c in chosen_conversations]
    except CorpusError as exc:
        print(f"parley bench sweep: {exc}", file=sys.stderr)
        return 2
    if not names:
        print("parley bench sweep: nothing to play (no conversation left)", file=sys.stderr)
        return 2
    specs = build_specs(
        chosen,
        names,
        quick=args.quick,
        corpus=args.corpus,
        corpus_digest=corpus.digest,
        turns=args.turns,
    )
    out = args.out or Path("bench-results") / time.strftime("sweep-%Y%m%d-%H%M%S")
    settings = {
        "sweep": {"grid": args.grid, "set": args.set, "ray": args.ray},
        "quick": args.quick,
        "corpus": str(corpus.path),
        "corpus_source": corpus.source,
        "corpus_digest": corpus.digest,
        "conversations": len(names),
        "turns_limit": args.turns,
        "overrides": args.set,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return run_sweep(specs, out, settings, console, ray=args.ray, plots=not args.no_plots)


def run_sweep(
    specs: list[CellSpec],
    out: Path,
    settings: dict[str, Any],
    console: Any,
    *,
    ray: str | None = None,
    plots: bool = True,
) -> int:
    """Run the cells not finished yet, then write the merged and Pareto reports."""
    from benchmarks.sweep.local import INTERRUPTED_CODES, run_local, sigterm_interrupts
    from benchmarks.sweep.store import is_finished, save_cell

    out.mkdir(parents=True, exist_ok=True)
    plan = {"settings": settings, "cells": [{"id": s.cell_id, **s.model_dump()} for s in specs]}
    (out / "sweep.json").write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")
    pending = [s for s in specs if not is_finished(out, s)]
    executor = f"ray {ray}" if ray else "local, one at a time"
    console.print(
        f"parley bench sweep: {len(specs)} cell(s), {len(specs) - len(pending)} already "
        f"finished, {len(pending)} to run ({executor}) -> {out}",
        markup=False,
    )
    ran: list[str] = []
    failed: list[str] = []

    def on_output(spec: CellSpec, output: CellOutput) -> None:
        if output.exit_code in INTERRUPTED_CODES:
            return
        folder = save_cell(out, spec, output, "ray" if ray else "local")
        ran.append(spec.cell_id)
        status = "ok" if output.exit_code == 0 else f"exit {output.exit_code}"
        if folder is None or output.exit_code != 0:
            failed.append(spec.cell_id)
        console.print(
            f"[{len(ran)}/{len(pending)}] {spec.name} {spec.conversation}: {status} "
            f"({output.elapsed_s:.0f} s on {output.node or '?'})",
            markup=False,
        )
        if folder is None:
            console.print(output.log_tail(), markup=False)

    error = None
    with sigterm_interrupts():
        if ray:
            from benchmarks.sweep.ray_executor import RayError, run_ray

            try:
                complete = run_ray(pending, on_output, ray)
            except RayError as exc:
                complete, error = False, str(exc)
        else:
            complete = run_local(pending, on_output)
    if error:
        print(f"parley bench sweep: {error}", file=sys.stderr)
    elif not complete:
        console.print("stopped: the finished cells are kept; run the same command to resume")
    from benchmarks.sweep.report import write_reports

    results = write_reports(out, specs, settings, console, plots=plots)
    if not complete:
        return 2 if error else 130
    return 1 if failed or results["failures"] else 0
