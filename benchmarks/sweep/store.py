"""A sweep's output folder: one folder per finished cell, written as each one completes.

Layout::

    OUT/cells/<cell id>/cell.json       the spec, where and when it ran, its status
    OUT/cells/<cell id>/bench/...       the cell's parley bench output (results, events, log)
    OUT/cells/<cell id>.error.log       the log of a cell that did not finish (not kept)

A cell's files are written to ``<cell id>.partial`` and renamed into place once
complete, so an interrupted sweep never leaves a half-written cell that looks
finished. A re-run with the same ``--out`` skips the cells that finished (same
spec, status ``ok``) and runs the rest; cells whose pipeline failed run again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.sweep.cells import BENCH_DIR, CellOutput, CellSpec

__all__ = ["CELLS_DIR", "cell_dir", "finished_cells", "is_finished", "read_cell", "save_cell"]

CELLS_DIR = "cells"


def cell_dir(out: Path, spec: CellSpec) -> Path:
    """Where a cell's results live once it finished."""
    return out / CELLS_DIR / spec.cell_id


def read_cell(out: Path, spec: CellSpec) -> dict[str, Any] | None:
    """The cell's ``cell.json`` if it finished with this exact spec, else None."""
    path = cell_dir(out, spec) / "cell.json"
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("spec") != spec.model_dump():
        return None
    return meta


def is_finished(out: Path, spec: CellSpec) -> bool:
    """True when the cell ran to the end without a pipeline failure (resume skips it)."""
    meta = read_cell(out, spec)
    return meta is not None and meta.get("status") == "ok"


def finished_cells(out: Path, specs: list[CellSpec]) -> list[CellSpec]:
    """The specs, in order, whose cell folder holds a finished run (ok or failed)."""
    return [s for s in specs if read_cell(out, s) is not None]


def save_cell(out: Path, spec: CellSpec, output: CellOutput, executor: str) -> Path | None:
    """Store a finished cell (atomically); an unfinished one only leaves its log.

    Returns the cell's folder, or None when the run did not finish.
    """
    cells = out / CELLS_DIR
    cells.mkdir(parents=True, exist_ok=True)
    if not output.finished:
        (cells / f"{spec.cell_id}.error.log").write_bytes(output.files.get("bench.log", b""))
        return None
    final = cell_dir(out, spec)
    partial = cells / f"{spec.cell_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for relative, data in output.files.items():
        target = partial / BENCH_DIR / relative
        if not target.resolve().is_relative_to(partial.resolve()):
            raise ValueError(f"cell {spec.cell_id}: file {relative!r} escapes its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    meta = {
        "spec": spec.model_dump(),
        "status": "ok" if output.exit_code == 0 else "failed",
        "exit_code": output.exit_code,
        "executor": executor,
        "node": output.node,
        "started": output.started,
        "elapsed_s": output.elapsed_s,
        "load_average": output.load_average,
        "resources": output.resources,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (partial / "cell.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    (cells / f"{spec.cell_id}.error.log").unlink(missing_ok=True)
    return final
