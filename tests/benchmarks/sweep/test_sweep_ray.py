"""A real sweep on a local Ray cluster, then resumed by the local executor.

The test starts a one-node Ray cluster on 127.0.0.1 (2 CPUs, no dashboard; Ray
otherwise binds the machine's outward address even when told 127.0.0.1) and
runs ``parley bench sweep --ray ADDRESS`` of two configurations of the cheapest
pipeline (cascade-local-fast: pocketsphinx) over a one-turn Piper corpus. Then a
second sweep folder gets one of those cells copied in and the local executor
runs the other: one report merges cells from both executors. Timings are not
asserted; the schema, the cells and the reservations are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.latency import generate
from benchmarks.latency.report import SCHEMA
from benchmarks.latency.script import Line
from benchmarks.sweep.ray_executor import LOOPBACK_ONLY

pytestmark = [pytest.mark.models, pytest.mark.slow]

ONE_TURN = {"one": [Line("normal", "What is the capital city of France?")]}
GRID = ["--grid", "vad.complete_stop_ms=200,600"]
EXTRA_KEYS = {"cell", "configuration", "executor", "node", "load_average"}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate.builtin_corpus(tmp_path_factory.mktemp("cache"), script=ONE_TURN)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in LOOPBACK_ONLY.items():  # the cluster and the sweep's driver
            patch.setenv(key, value)
        import ray

        context = ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 1024 * 1024,
            log_to_driver=False,
        )
        try:
            address = str(context.address_info["gcs_address"])
            assert address.startswith("127.0.0.1:")
            yield address
        finally:
            ray.shutdown()


def sweep(corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pipelines.cli", "bench", "sweep", "cascade-local-fast"]
    argv += ["--corpus", str(corpus), "--out", str(out), "--no-plots", *GRID, *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=1200)


def keys(records: list[dict[str, Any]]) -> set[str]:
    return set().union(*(r.keys() for r in records))


def structure(results: dict[str, Any]) -> dict[str, Any]:
    """The shape of a results document: its keys, level by level."""
    return {
        "top": set(results),
        "pipelines": keys(results["pipelines"]),
        "conversations": keys(results["conversations"]),
        "turns": keys(results["turns"]),
        "summary": keys(list(results["summary"].values())),
    }


@pytest.fixture(scope="module")
def ray_run(
    corpus_dir: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("ray-sweep")
    done = sweep(corpus_dir, out, "--ray", ray_address)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, json.loads((out / "results.json").read_text())


def planned(out: Path) -> list[str]:
    return [c["id"] for c in json.loads((out / "sweep.json").read_text())["cells"]]


def test_every_cell_ran_on_ray_holding_the_whole_node(ray_run: tuple[Path, Any]) -> None:
    out, results = ray_run
    assert results["schema"] == SCHEMA
    assert results["complete"] is True
    cells = planned(out)
    assert len(cells) == 2
    assert [c["cell"] for c in results["conversations"]] == cells
    assert [p["pipeline"] for p in results["pipelines"]] == [
        "cascade-local-fast [vad.complete_stop_ms=200]",
        "cascade-local-fast [vad.complete_stop_ms=600]",
    ]
    for cell in cells:
        meta = json.loads((out / "cells" / cell / "cell.json").read_text())
        assert meta["executor"] == "ray"
        assert meta["resources"] == {"CPU": 2.0}  # the node's every CPU
    for conversation in results["conversations"]:
        assert conversation["end"] == "ended"
        assert (out / conversation["events_file"]).stat().st_size > 0
    replied = [t for t in results["turns"] if t["replied"]]
    assert len(replied) == 2  # one turn per configuration, each answered
    assert all(0 < t["v2v_s"] < 30 for t in replied)
    assert "\u2605" in (out / "pareto.md").read_text()


def test_ray_and_local_cells_merge_into_one_report_of_the_same_schema(
    ray_run: tuple[Path, Any], corpus_dir: Path, tmp_path: Path
) -> None:
    ray_out, ray_results = ray_run
    first, second = planned(ray_out)
    (tmp_path / "cells").mkdir()
    shutil.copytree(ray_out / "cells" / first, tmp_path / "cells" / first)
    done = sweep(corpus_dir, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 already finished, 1 to run" in done.stdout
    merged = json.loads((tmp_path / "results.json").read_text())
    assert merged["complete"] is True
    assert [c["cell"] for c in merged["conversations"]] == [first, second]
    assert [c["executor"] for c in merged["conversations"]] == ["ray", "local"]
    assert structure(merged) == structure(ray_results)
    # a cell is a plain parley bench run; the merge only adds where each one came from
    plain = json.loads((tmp_path / "cells" / second / "bench" / "results.json").read_text())
    assert plain["schema"] == merged["schema"] == SCHEMA
    assert set(plain) == set(merged)
    assert keys(plain["turns"]) == keys(merged["turns"])
    assert keys(merged["conversations"]) - keys(plain["conversations"]) == EXTRA_KEYS
