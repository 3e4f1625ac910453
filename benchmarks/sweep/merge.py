"""Merge the finished cells of a sweep into one ``parley bench`` results document.

Every cell holds the ``results.jsonl`` of an ordinary bench run of one pipeline
over one conversation. Merging renames each pipeline after its configuration
(``cascade-local-fast [vad.stop_ms=200]``), so the configurations sit side by side
as the pipelines of one bench run do, points the events files into the cell
folders, notes which cell, executor and node each conversation came from, and
hands the lines to :func:`benchmarks.latency.report.collect`. The result has the
bench's schema, whichever executor ran each cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.sweep.cells import BENCH_DIR, CellSpec
from benchmarks.sweep.store import CELLS_DIR, cell_dir, read_cell

__all__ = ["merge_cells", "merged_results"]

MERGED = "results.jsonl"


def _cell_records(out: Path, spec: CellSpec, meta: dict[str, Any]) -> list[dict[str, Any]]:
    folder = cell_dir(out, spec) / BENCH_DIR
    prefix = f"{CELLS_DIR}/{spec.cell_id}/{BENCH_DIR}/"
    records: list[dict[str, Any]] = []
    path = folder / "results.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        kind = record.get("type")
        record["pipeline"] = spec.name
        if kind == "pipeline":
            record.update(
                base_pipeline=spec.pipeline_name,
                configuration=spec.label,
                overrides=spec.overrides,
            )
        elif kind == "conversation":
            for key in ("events_file", "audio_file"):
                if record.get(key):
                    record[key] = prefix + record[key]
            record.update(
                cell=spec.cell_id,
                configuration=spec.label,
                executor=meta.get("executor"),
                node=meta.get("node"),
                load_average=meta.get("load_average"),
            )
        records.append(record)
    return records


def merge_cells(out: Path, specs: list[CellSpec]) -> tuple[Path, list[CellSpec]]:
    """Write ``OUT/results.jsonl`` from the finished cells among ``specs``, in plan order.

    Returns the file and the specs that had a finished cell.
    """
    merged: list[dict[str, Any]] = []
    named: set[str] = set()
    present: list[CellSpec] = []
    for spec in specs:
        meta = read_cell(out, spec)
        if meta is None:
            continue
        present.append(spec)
        for record in _cell_records(out, spec, meta):
            if record.get("type") == "pipeline":
                if record["pipeline"] in named:
                    continue
                named.add(record["pipeline"])
            merged.append(record)
    path = out / MERGED
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in merged), encoding="utf-8")
    return path, present


def merged_results(
    out: Path,
    specs: list[CellSpec],
    *,
    environment: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The bench results document of every finished cell; complete when all of them are."""
    from benchmarks.latency.report import collect

    path, present = merge_cells(out, specs)
    settings = {**settings, "cells": len(specs), "cells_finished": len(present)}
    return collect(
        path, environment=environment, settings=settings, complete=len(present) == len(specs)
    )
