"""Detail tables of each scenario, built with ``rich`` from the results dictionary."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from benchmarks.overhead.common import fmt

__all__ = ["scenario_tables"]


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < 2 else "right")
    return table


def _latency(lat: dict[str, Any]) -> Table:
    table = _table(
        "a. latency through N passthrough stages (paced: 1 frame / 20 ms; tight: back to back)",
        [
            "N",
            "variant",
            "p50 us",
            "p99 us",
            "max us",
            "p50/N us",
            "tight ns/frame",
            "CPU ns/frame",
        ],
    )
    for n, variants in lat["paced_latency_us"].items():
        for key, stats in variants.items():
            tight = lat["tight_ns_per_frame"][n][key]
            table.add_row(
                n,
                key,
                fmt(stats.get("p50")),
                fmt(stats.get("p99")),
                fmt(stats.get("max")),
                fmt(stats.get("p50", 0) / int(n)),
                fmt(tight["median"]),
                fmt(tight["cpu_median"]),
            )
        table.add_section()
    for key, hop in lat["tight_per_hop_us"].items():
        paced = lat["paced_per_hop_us"][key]["slope_us"]
        table.add_row(
            "slope",
            key,
            "",
            "",
            "",
            f"paced {fmt(paced['min_max'])}",
            f"{fmt(hop['slope_us']['min_max'] * 1e3)} /hop",
            f"{fmt(hop['cpu_slope_us']['min_max'] * 1e3)} /hop",
        )
    return table


def _simple(scenarios: dict[str, Any]) -> Table:
    table = _table("b./c. throughput and interruption", ["scenario", "figure", "value"])
    thr = scenarios.get("throughput")
    if thr is not None:
        for impl, rate in thr["frames_per_s"].items():
            table.add_row(
                "b",
                f"{impl}: frames/s (median; min..max)",
                f"{fmt(rate['median'])} ({fmt(rate['min'])}..{fmt(rate['max'])}); "
                f"per CPU s {fmt(thr['frames_per_cpu_s'][impl])}",
            )
    intr = scenarios.get("interruption")
    if intr is not None:
        for label, key in (
            ("interruption with backlog, ms", "latency_ms"),
            ("interruption, idle pipeline, ms", "idle_latency_ms"),
            ("in-flight work cancelled after, ms", "inflight_cancel_ms"),
        ):
            stats = intr[key]
            table.add_row(
                "c", f"{label} p50 / p99", f"{fmt(stats.get('p50'))} / {fmt(stats.get('p99'))}"
            )
        dropped = intr["dropped"]
        table.add_row(
            "c",
            "frames dropped (min..max), all as expected",
            f"{dropped['min']}..{dropped['max']}, {fmt(dropped['all_as_expected'])}",
        )
    return table


def _concurrency(conc: dict[str, Any]) -> Table:
    table = _table(
        f"d. K concurrent sessions of {conc['config']['stages']} stages, "
        f"{conc['config']['duration_s']:g} s",
        [
            "variant",
            "K",
            "CPU %",
            "p50/p99 us",
            "late p99 ms (feed / play)",
            "delivered/expected",
            "kept up",
            "RSS ready MiB",
            "peak RSS MiB",
        ],
    )
    for variant, runs in conc["runs"].items():
        for k, run in runs.items():
            lat = run["latency_us"]
            late = run.get("playout_lateness_ms") or run["feeder_lateness_ms"]
            table.add_row(
                variant,
                k,
                fmt(run["cpu_pct_of_one_core"]),
                f"{fmt(lat.get('p50'))} / {fmt(lat.get('p99'))}" if lat.get("count") else "-",
                fmt(late.get("p99")),
                f"{run['frames_delivered']}/{run['frames_expected']}",
                fmt(run["kept_up"]),
                fmt(run["rss_ready_kib"] / 1024),
                fmt(run["peak_rss_kib"] / 1024),
            )
        table.add_section()
    return table


def _memory(mem: dict[str, Any]) -> Table:
    table = _table(
        f"e. {mem['config']['pipelines']} idle started pipelines of "
        f"{mem['config']['stages']} stages; import time",
        ["what", "figure", "value"],
    )
    for impl, modes in mem["idle"].items():
        table.add_row(
            impl,
            "KiB per pipeline (tracemalloc)",
            fmt(modes["tracemalloc"]["traced_kib_per_pipeline"]),
        )
        table.add_row(
            impl, "KiB per pipeline (RSS delta)", fmt(modes["rss"]["rss_kib_per_pipeline"])
        )
    for site in mem["idle"]["parley"]["tracemalloc"].get("top_sites", [])[:8]:
        table.add_row("  site", site["where"], f"{fmt(site['bytes_per_pipeline'])} B")
    imports = mem["imports"]
    table.add_section()
    for module in ("framework", "anyio"):
        table.add_row(f"import {module}", "median ms", fmt(imports[module]["median_ms"]))
    for row in imports["importtime_top"][:8]:
        table.add_row("  -X importtime", row["module"], f"{fmt(row['cumulative_ms'])} ms")
    return table


def scenario_tables(scenarios: dict[str, Any]) -> list[Table]:
    """The detail tables for whichever scenarios ran."""
    tables = []
    if "latency" in scenarios:
        tables.append(_latency(scenarios["latency"]))
    if "throughput" in scenarios or "interruption" in scenarios:
        tables.append(_simple(scenarios))
    if "concurrency" in scenarios:
        tables.append(_concurrency(scenarios["concurrency"]))
    if "memory" in scenarios:
        tables.append(_memory(scenarios["memory"]))
    return tables
