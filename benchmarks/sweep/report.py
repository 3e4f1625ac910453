"""A sweep's reports: the merged bench results, the Pareto table and plot.

Written to the sweep's folder after every run, complete or not:

* ``results.json`` - the bench's results document over every finished cell, one
  "pipeline" per configuration (``parley bench compare`` reads it too);
* ``report.md`` - the bench's Markdown report of it, with the Pareto table first;
* ``pareto.md``, ``pareto.png`` - the Pareto table and plot alone;
* ``latency.png``, ``waterfall.png`` - the bench's own plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.sweep.cells import CellSpec
from benchmarks.sweep.merge import merged_results
from benchmarks.sweep.pareto import SweepPoint, pareto_markdown, plot_pareto, sweep_points

__all__ = ["print_points", "write_reports"]


def _cells_line(results: dict[str, Any]) -> str:
    settings = results["settings"]
    load = results["environment"].get("load_average")
    text = f"{settings['cells_finished']} of {settings['cells']} cell(s) finished"
    if load:
        text += f"; load average when reported: {', '.join(str(x) for x in load)}"
    return text + "."


def write_reports(
    out: Path, specs: list[CellSpec], settings: dict[str, Any], console: Any, *, plots: bool
) -> dict[str, Any]:
    """Merge the finished cells and write every report; returns the results document."""
    from benchmarks.latency.environment import environment
    from benchmarks.latency.report import markdown_report, write_results

    results = merged_results(out, specs, environment=environment(), settings=settings)
    write_results(results, out / "results.json")
    points = sweep_points(results)
    written: list[str] = []
    if plots and results["turns"]:
        try:
            from benchmarks.latency.plots import plot_all

            written = plot_all(results, out)
            if plot_pareto(points, out / "pareto.png") is not None:
                written.insert(0, "pareto.png")
        except ImportError:
            console.print("(plots skipped: pip install matplotlib)")
    table = pareto_markdown(points)
    (out / "pareto.md").write_text(
        "# Sweep: Pareto front\n\n" + _cells_line(results) + "\n\n" + table, encoding="utf-8"
    )
    bench = markdown_report(results, written)
    title, _, rest = bench.partition("\n")
    pareto = f"## Pareto front\n\n{_cells_line(results)}\n\n{table}\n"
    (out / "report.md").write_text(
        f"{title.replace('parley bench report', 'parley bench sweep report')}\n\n{pareto}{rest}",
        encoding="utf-8",
    )
    print_points(points, console)
    console.print(
        f"results: {out / 'results.json'}  report: {out / 'report.md'}  "
        f"({results['settings']['cells_finished']} of {len(specs)} cells)",
        markup=False,
    )
    return results


def print_points(points: list[SweepPoint], console: Any) -> None:
    """The Pareto table in the terminal."""
    from rich.table import Table

    table = Table(title="parley bench sweep: Pareto front (\u2605)")
    for column in ("", "pipeline", "configuration", "v2v p50 ms", "WER", "talked over"):
        right = column.startswith(("v2v", "WER"))
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for pt in sorted(points, key=lambda p: (p.v2v_p50_s is None, p.v2v_p50_s or 0.0)):
        table.add_row(
            {True: "\u2605", False: "", None: "n/r"}[pt.front],
            pt.pipeline,
            pt.configuration,
            "-" if pt.v2v_p50_s is None else f"{pt.v2v_p50_s * 1000:.0f}",
            "-" if pt.wer is None else f"{pt.wer * 100:.1f} %",
            "-" if pt.talked_over is None else f"{pt.talked_over} / {pt.turns}",
        )
    console.print(table)
