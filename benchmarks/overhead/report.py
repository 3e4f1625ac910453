"""Targets and the printed report: every figure next to its target and the baselines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from benchmarks.overhead.common import fmt

__all__ = ["evaluate_targets", "print_report"]

BASELINES = ("asyncio.Queue", "anyio stream")


def _get(data: dict[str, Any], *path: str) -> Any:
    """``data[path[0]][path[1]]...`` or None if any step is missing."""
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _row(
    figure: str,
    value: Any,
    unit: str,
    target: str,
    check: Callable[[Any], bool] | None,
    baselines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    passed = None if value is None or check is None else bool(check(value))
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "baselines": baselines or {},
        "target": target,
        "passed": passed,
    }


def _latency_targets(lat: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    ns = lat["config"]["stages"]
    span = f"N={min(ns)}->{max(ns)}"
    per_hop = (
        ("tight_per_hop_us", "slope_us", "per hop, tight loop"),
        ("tight_per_hop_us", "cpu_slope_us", "per hop, tight loop, CPU time"),
        ("paced_per_hop_us", "slope_us", "per hop, paced p50 slope"),
    )
    for section, field, label in per_hop:
        for kind in ("system", "data"):
            key = f"queue_frame/{kind}"
            base = {b: _get(lat, section, b, field, "min_max") for b in BASELINES}
            rows.append(
                _row(
                    f"a. {label}, {kind} frames ({span})",
                    _get(lat, section, key, field, "min_max"),
                    "us",
                    "<= 3 us",
                    lambda v: v <= 3.0,
                    base,
                )
            )
    top = str(max(ns))
    for kind in ("system", "data"):
        key = f"queue_frame/{kind}"
        base = {b: _get(lat, "paced_latency_us", top, b, "p99") for b in BASELINES}
        rows.append(
            _row(
                f"a. paced p99 latency through N={top}, {kind} frames",
                _get(lat, "paced_latency_us", top, key, "p99"),
                "us",
                "(info)",
                None,
                base,
            )
        )
    return rows


def _concurrency_targets(conc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for variant in ("system", "data"):
        run100 = _get(conc, "runs", variant, "100")
        if run100 is not None:
            floor = _get(conc, "runs", "feeders", "100", "cpu_pct_of_one_core")
            rows.append(
                _row(
                    f"d. 100 sessions, {variant} frames: CPU of one core",
                    run100["cpu_pct_of_one_core"],
                    "%",
                    "<= 15 %",
                    lambda v: v <= 15.0,
                    {"feeders only": floor} if floor is not None else None,
                )
            )
            rows.append(
                _row(
                    f"d. 100 sessions, {variant} frames: p99 latency",
                    _get(run100, "latency_us", "p99") / 1e3,
                    "ms",
                    "<= 2 ms",
                    lambda v: v <= 2.0,
                )
            )
        run1000 = _get(conc, "runs", variant, "1000")
        if run1000 is not None:
            rows.append(
                _row(
                    f"d. 1000 sessions, {variant} frames: keep up with real time",
                    run1000["kept_up"],
                    "",
                    "yes",
                    lambda v: v is True,
                    {"CPU %": round(run1000["cpu_pct_of_one_core"], 1)},
                )
            )
    return rows + _output_targets(conc)


def _output_targets(conc: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets of the paced-output variant: CPU at 100 sessions, keeping up at 1,000."""
    rows = []
    run100 = _get(conc, "runs", "output", "100")
    if run100 is not None:
        cpu = run100["cpu_pct_of_one_core"]
        figure = "d. 100 sessions, paced output: CPU of one core"
        rows.append(_row(figure, cpu, "%", "<= 10 %", lambda v: v <= 10.0))
    run1000 = _get(conc, "runs", "output", "1000")
    if run1000 is not None:
        seen = {
            "delivered": f"{run1000['frames_delivered']}/{run1000['frames_expected']}",
            "p99 ms": _get(run1000, "playout_lateness_ms", "p99"),
            "CPU %": round(run1000["cpu_pct_of_one_core"], 1),
        }
        baseline = _get(conc, "runs", "output-pygc", "1000")
        if baseline is not None:  # the same sessions with Python's collector thresholds
            seen["p99 ms, Python's GC"] = _get(baseline, "playout_lateness_ms", "p99")
        figure = "d. 1000 sessions, paced output: every chunk, p99 lateness < 20 ms"
        rows.append(_row(figure, run1000["kept_up"], "", "yes", lambda v: v is True, seen))
    return rows


def evaluate_targets(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per targeted figure; ``passed`` is None where the target is informational."""
    rows: list[dict[str, Any]] = []
    if "latency" in scenarios:
        rows += _latency_targets(scenarios["latency"])
    thr = scenarios.get("throughput")
    if thr is not None:
        rows.append(
            _row(
                f"b. throughput, {thr['config']['stages']} stages, data frames",
                thr["frames_per_s"]["parley"]["median"],
                "frames/s",
                ">= 40,000 frames/s",
                lambda v: v >= 40_000,
                {b: thr["frames_per_s"][b]["median"] for b in BASELINES},
            )
        )
        rows.append(
            _row(
                f"b. throughput per CPU second, {thr['config']['stages']} stages",
                thr["frames_per_cpu_s"]["parley"],
                "frames/s",
                ">= 40,000 frames/s",
                lambda v: v >= 40_000,
                {b: thr["frames_per_cpu_s"][b] for b in BASELINES},
            )
        )
    intr = scenarios.get("interruption")
    if intr is not None:
        cfg = intr["config"]
        rows.append(
            _row(
                f"c. interruption through a {cfg['backlog']}-frame backlog, p99",
                intr["latency_ms"]["p99"],
                "ms",
                "<= 0.2 ms",
                lambda v: v <= 0.2,
                {"idle pipeline": intr["idle_latency_ms"]["p99"]},
            )
        )
        rows.append(
            _row(
                "c. queued frames dropped by the interruption",
                f"{intr['dropped']['min']}..{intr['dropped']['max']} of {cfg['backlog'] + 1}",
                "",
                "all not yet processed",
                lambda _: bool(intr["dropped"]["all_as_expected"]),
            )
        )
    conc = scenarios.get("concurrency")
    if conc is not None:
        rows += _concurrency_targets(conc)
    mem = scenarios.get("memory")
    if mem is not None:
        base = _get(mem, "idle", "asyncio.Queue", "tracemalloc", "traced_kib_per_pipeline")
        rows.append(
            _row(
                f"e. idle started pipeline, {mem['config']['stages']} stages (tracemalloc)",
                _get(mem, "idle", "parley", "tracemalloc", "traced_kib_per_pipeline"),
                "KiB",
                "<= 50 KiB",
                lambda v: v <= 50.0,
                {"asyncio.Queue": base},
            )
        )
        rows.append(
            _row(
                "e. idle started pipeline (RSS delta)",
                _get(mem, "idle", "parley", "rss", "rss_kib_per_pipeline"),
                "KiB",
                "<= 50 KiB",
                lambda v: v <= 50.0,
                {
                    "asyncio.Queue": _get(
                        mem, "idle", "asyncio.Queue", "rss", "rss_kib_per_pipeline"
                    )
                },
            )
        )
        rows.append(
            _row(
                "e. import framework (median, fresh interpreter)",
                _get(mem, "imports", "framework", "median_ms"),
                "ms",
                "<= 150 ms",
                lambda v: v <= 150.0,
                {"import anyio": _get(mem, "imports", "anyio", "median_ms")},
            )
        )
    return rows


def print_report(results: dict[str, Any], console: Any = None) -> None:
    """Print the detail tables of each scenario, then the targets table, with ``rich``."""
    from rich.console import Console
    from rich.table import Table

    from benchmarks.overhead.tables import scenario_tables

    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=150)
    for table in scenario_tables(results["scenarios"]):
        console.print(table)
    table = Table(title="Engine overhead: figures vs targets", title_justify="left")
    for column in ("Figure", "Parley", "Baselines", "Target", "Result"):
        table.add_column(column, justify="left" if column == "Figure" else "right")
    for row in results["targets"]:
        baselines = ", ".join(f"{k}: {fmt(v, row['unit'])}" for k, v in row["baselines"].items())
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: ""}[row["passed"]]
        table.add_row(
            row["figure"], fmt(row["value"], row["unit"]), baselines, row["target"], verdict
        )
    console.print(table)
