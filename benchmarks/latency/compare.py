"""``parley bench compare A.json B.json``: medians of two runs side by side, with deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.latency.report import ROWS, read_results

__all__ = ["compare_rows", "print_comparison"]


def _median(summary: dict[str, Any], key: str) -> float | None:
    stats = summary.get(key, {})
    value = stats.get("mean") if key == "wer" else stats.get("p50")
    return None if value is None else float(value)


# turn-taking counts compared as they are: (label, where in the summary, key)
COUNT_ROWS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("talk-over turns", ("counts",), "talk_over_turns"),
    ("false ends of turn", ("counts",), "false_ends"),
    ("turns split by the VAD", ("counts",), "split_turns"),
    ("user words lost from the context", ("counts",), "context_lost"),
    ("  missing, recognition errors included", ("counts",), "context_missing"),
    ("backchannels that stopped the bot", ("counts",), "backchannels_stopped_bot"),
    ("hesitation turns: talk-over turns", ("by_kind", "hesitation"), "talk_over_turns"),
    ("hesitation turns: words lost", ("by_kind", "hesitation"), "context_lost"),
    ("hesitation turns: false ends", ("by_kind", "hesitation"), "false_ends"),
)


def _count(summary: dict[str, Any], path: tuple[str, ...], key: str) -> float | None:
    for part in path:
        summary = summary.get(part, {})
    value = summary.get(key)
    return None if value is None else float(value)


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[list[str]]:
    """Rows of (pipeline, metric, A, B, delta, delta %) for every metric both runs have."""
    rows: list[list[str]] = []
    names = [p["pipeline"] for p in a["pipelines"]]
    names += [p["pipeline"] for p in b["pipelines"] if p["pipeline"] not in names]
    for name in names:
        sa, sb = a["summary"].get(name, {}), b["summary"].get(name, {})
        for label, key, unit in ROWS:
            va, vb = _median(sa, key), _median(sb, key)
            if va is None and vb is None:
                continue
            scale = 1000 if unit == "ms" else (100 if unit == "%" else 1)
            fmt = "{:.0f}" if unit == "ms" else "{:.1f}"
            cell_a = "-" if va is None else fmt.format(va * scale)
            cell_b = "-" if vb is None else fmt.format(vb * scale)
            delta = pct = "-"
            if va is not None and vb is not None:
                delta = ("{:+.0f}" if unit == "ms" else "{:+.1f}").format((vb - va) * scale)
                if va:
                    pct = f"{(vb - va) / abs(va) * 100:+.0f}%"
            rows.append([name, label.strip(), cell_a, cell_b, delta, pct])
        for label, path, key in COUNT_ROWS:
            ca, cb = _count(sa, path, key), _count(sb, path, key)
            if ca is None and cb is None:
                continue
            change = "-" if ca is None or cb is None else f"{cb - ca:+.0f}"
            cells = ["-" if c is None else f"{c:.0f}" for c in (ca, cb)]
            rows.append([name, label.strip(), *cells, change, "-"])
    return rows


def print_comparison(path_a: Path, path_b: Path, console: Any = None) -> int:
    """Print the comparison table; returns an exit code."""
    from rich.console import Console
    from rich.table import Table

    a, b = read_results(path_a), read_results(path_b)
    console = console or Console()
    table = Table(title=f"medians (ms unless noted): A = {path_a}, B = {path_b}")
    for column, justify in (
        ("pipeline", "left"),
        ("metric", "left"),
        ("A", "right"),
        ("B", "right"),
        ("B - A", "right"),
        ("change", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in compare_rows(a, b):
        table.add_row(*row)
    console.print(table)
    return 0
