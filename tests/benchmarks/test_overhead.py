"""The engine overhead benchmark runs end to end and writes a complete, coherent JSON.

Only the structure and the bookkeeping are checked (counts add up, numbers are
positive, frames dropped by an interruption are exactly those not yet
processed), never wall-clock figures: those depend on the machine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.overhead import main
from benchmarks.overhead.cli import SCENARIOS
from framework.runtime import YOUNG_THRESHOLD


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("overhead") / "overhead.json"
    assert main(["--tiny", "--no-table", "--json", str(path)]) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _check_summary(summary: dict[str, Any], count: int | None = None) -> None:
    assert summary["count"] > 0
    if count is not None:
        assert summary["count"] == count
    assert _positive(summary["p50"])
    assert summary["p50"] <= summary["p99"] <= summary["max"]


def test_every_scenario_and_the_environment_are_recorded(results: dict[str, Any]) -> None:
    assert list(results["scenarios"]) == list(SCENARIOS)
    env = results["environment"]
    for key in ("python", "cpu_model", "cpu_count", "anyio", "git_commit", "loadavg_start"):
        assert key in env
    assert env["python"].count(".") == 2
    assert results["meta"]["profile"] == "tiny"


def test_latency_has_every_variant_for_every_length(results: dict[str, Any]) -> None:
    lat = results["scenarios"]["latency"]
    cfg = lat["config"]
    variants = {"queue_frame/system", "queue_frame/data", "first_stage/system"}
    variants |= {"first_stage/data", "asyncio.Queue", "anyio stream"}
    for n in cfg["stages"]:
        assert set(lat["paced_latency_us"][str(n)]) == variants
        for summary in lat["paced_latency_us"][str(n)].values():
            _check_summary(summary, cfg["paced_frames_per_variant"])
        for tight in lat["tight_ns_per_frame"][str(n)].values():
            assert len(tight["runs"]) == cfg["tight_repeats"]
            assert all(_positive(run) for run in tight["runs"])
            assert _positive(tight["cpu_median"])
    for key in variants:
        assert math.isfinite(lat["tight_per_hop_us"][key]["slope_us"]["min_max"])
        assert math.isfinite(lat["paced_per_hop_us"][key]["slope_us"]["min_max"])


def test_throughput_delivers_every_frame(results: dict[str, Any]) -> None:
    thr = results["scenarios"]["throughput"]
    for impl in ("parley", "asyncio.Queue", "anyio stream"):
        assert _positive(thr["frames_per_s"][impl]["median"])
        assert _positive(thr["frames_per_cpu_s"][impl])
        assert thr["frames_delivered"][impl] == thr["frames_used"][impl] > 0


def test_interruption_drops_exactly_the_unprocessed_frames(results: dict[str, Any]) -> None:
    intr = results["scenarios"]["interruption"]
    rounds = intr["rounds"]
    assert len(rounds) == intr["config"]["repeats"]
    for r in rounds:
        assert r["queued_frames"] == intr["config"]["backlog"] + 1
        assert r["backlog_at_interrupt"] == intr["config"]["backlog"]
        assert r["dropped"] == r["expected_dropped"]
        assert r["dropped"] == r["backlog_at_interrupt"] + r["in_flight_at_interrupt"]
        assert r["delivered"] + r["dropped"] == r["queued_frames"]
        assert r["latency_ns"] > 0
    assert intr["dropped"]["all_as_expected"] is True
    _check_summary(intr["latency_ms"], len(rounds))
    _check_summary(intr["idle_latency_ms"])


def test_concurrency_accounts_for_every_frame(results: dict[str, Any]) -> None:
    conc = results["scenarios"]["concurrency"]
    for variant in conc["config"]["variants"]:
        for k in conc["config"]["ks"]:
            run = conc["runs"][variant][str(k)]
            assert run["k"] == k
            assert _positive(run["cpu_pct_of_one_core"])
            assert run["peak_rss_kib"] >= run["rss_ready_kib"] > 0
            assert isinstance(run["kept_up"], bool)
            if variant.startswith("output"):  # 20 ms chunks played from larger pieces of audio
                # sessions run with the collector as parley serve sets it, and Python's
                young = YOUNG_THRESHOLD if variant == "output" else 700
                assert run["gc_thresholds"][0] == young
                assert run["frames_delivered"] == run["frames_expected"]
                pieces_per_chunk = 20 / run["piece_ms"]
                assert run["frames_fed"] == run["frames_expected"] * pieces_per_chunk
                assert run["playout_lateness_ms"]["count"] == run["frames_delivered"]
                continue
            assert run["frames_delivered"] == run["frames_fed"] == run["frames_expected"]
            assert run["feeder_lateness_ms"]["count"] == run["frames_fed"]
            if variant not in ("feeders", "pacer"):  # no pipeline
                _check_summary(run["latency_us"], run["frames_delivered"])


def test_memory_and_import_time(results: dict[str, Any]) -> None:
    mem = results["scenarios"]["memory"]
    for impl in ("parley", "asyncio.Queue"):
        traced = mem["idle"][impl]["tracemalloc"]
        assert traced["started"] == mem["config"]["pipelines"]
        assert _positive(traced["traced_kib_per_pipeline"])
        assert traced["top_sites"]
        assert mem["idle"][impl]["rss"]["started"] == mem["config"]["pipelines"]
    imports = mem["imports"]
    assert _positive(imports["framework"]["median_ms"])
    assert any(row["module"] == "framework" for row in imports["importtime_top"])


def test_targets_are_evaluated(results: dict[str, Any]) -> None:
    targets = results["targets"]
    assert targets
    for row in targets:
        assert row["figure"]
        assert row["target"]
        assert row["passed"] in (True, False, None)
    figures = " ".join(row["figure"] for row in targets)
    for prefix in ("a.", "b.", "c.", "e."):
        assert prefix in figures


def test_selected_scenarios_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.json"
    assert main(["--tiny", "--scenario", "b", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert list(data["scenarios"]) == ["throughput"]
    assert "throughput" in capsys.readouterr().out


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--scenario", "nope"])
