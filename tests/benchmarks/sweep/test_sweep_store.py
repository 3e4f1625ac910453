"""Cells stored as they finish, merged into one bench document, and resumed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks.latency.report import SCHEMA, collect
from benchmarks.sweep import local
from benchmarks.sweep.cells import CellOutput, CellSpec
from benchmarks.sweep.cli import run_sweep
from benchmarks.sweep.merge import merged_results
from benchmarks.sweep.store import CELLS_DIR, cell_dir, is_finished, read_cell, save_cell


def spec(label: str, conversation: str = "quick", sha: str = "a" * 64) -> CellSpec:
    return CellSpec(
        pipeline_file="/x/cascade-local-fast.toml",
        pipeline_name="cascade-local-fast",
        pipeline_sha256=sha,
        label=label,
        overrides=[label],
        conversation=conversation,
        quick=True,
    )


def bench_output(s: CellSpec, v2v: float, exit_code: int = 0) -> CellOutput:
    """The files a one-conversation bench writes, with the records the runner appends."""
    name = s.pipeline_name
    events = f"events/{name}/{s.conversation}.jsonl"
    lines: list[dict[str, Any]] = [
        {
            "type": "pipeline",
            "pipeline": name,
            "transport": "file",
            "file": s.pipeline_file,
            "sha256": s.pipeline_sha256,
            "architecture": "cascade",
            "description": "",
            "local_server": False,
        },
        {
            "type": "turn",
            "pipeline": name,
            "conversation": s.conversation,
            "turn": 1,
            "kind": "normal",
            "trigger": "",
            "speech_end_s": 1.5,
            "replied": True,
            "early": False,
            "talk_overs": 0,
            "v2v_s": v2v,
            "stages": {},
            "wer": 0.1,
        },
        {
            "type": "conversation",
            "pipeline": name,
            "conversation": s.conversation,
            "duration_s": 10.0,
            "end": "ended",
            "events_file": events,
        },
    ]
    if exit_code == 1:
        lines.append({"type": "failure", "file": s.pipeline_file, "error": "RuntimeError()"})
    text = "".join(json.dumps(r) + "\n" for r in lines)
    files = {"results.jsonl": text.encode(), events: b'{"event": "x"}\n', "bench.log": b"ok\n"}
    return CellOutput(
        exit_code=exit_code,
        files={**files, "results.json": b"{}"},
        node="node-a",
        elapsed_s=1.0,
        load_average=[1.0, 1.5],
    )


def test_a_finished_cell_is_stored_with_where_it_ran(tmp_path: Path) -> None:
    s = spec("vad.stop_ms=200")
    folder = save_cell(tmp_path, s, bench_output(s, 0.5), "ray")
    assert folder == cell_dir(tmp_path, s)
    assert is_finished(tmp_path, s)
    meta = read_cell(tmp_path, s)
    assert meta is not None
    assert (meta["status"], meta["executor"], meta["node"]) == ("ok", "ray", "node-a")
    assert (folder / "bench" / "events" / "cascade-local-fast" / "quick.jsonl").is_file()
    assert not list((tmp_path / CELLS_DIR).glob("*.partial"))


def test_an_unfinished_cell_leaves_only_its_log(tmp_path: Path) -> None:
    s = spec("vad.stop_ms=200")
    output = CellOutput(exit_code=-1, files={"bench.log": b"Traceback: boom\n"})
    assert not output.finished
    assert save_cell(tmp_path, s, output, "local") is None
    assert not is_finished(tmp_path, s)
    assert not cell_dir(tmp_path, s).exists()
    assert (tmp_path / CELLS_DIR / f"{s.cell_id}.error.log").read_text() == "Traceback: boom\n"


def test_a_half_written_cell_does_not_count(tmp_path: Path) -> None:
    s = spec("vad.stop_ms=200")
    partial = tmp_path / CELLS_DIR / f"{s.cell_id}.partial"
    partial.mkdir(parents=True)
    (partial / "cell.json").write_text(json.dumps({"spec": s.model_dump(), "status": "ok"}))
    assert not is_finished(tmp_path, s)


def test_a_changed_pipeline_file_is_a_new_cell(tmp_path: Path) -> None:
    old, new = spec("x.y=1"), spec("x.y=1", sha="b" * 64)
    assert old.cell_id != new.cell_id
    save_cell(tmp_path, old, bench_output(old, 0.5), "local")
    assert not is_finished(tmp_path, new)


def test_cells_merge_into_one_bench_document(tmp_path: Path) -> None:
    cells = [spec("vad.stop_ms=200"), spec("vad.stop_ms=400"), spec("vad.stop_ms=600")]
    save_cell(tmp_path, cells[0], bench_output(cells[0], 0.5), "local")
    save_cell(tmp_path, cells[1], bench_output(cells[1], 0.7), "ray")
    results = merged_results(tmp_path, cells, environment={}, settings={})
    assert results["schema"] == SCHEMA
    assert results["complete"] is False  # the third cell never ran
    assert results["settings"]["cells_finished"] == 2
    names = [p["pipeline"] for p in results["pipelines"]]
    assert names == [
        "cascade-local-fast [vad.stop_ms=200]",
        "cascade-local-fast [vad.stop_ms=400]",
    ]
    assert results["summary"][names[1]]["v2v_s"]["p50"] == 0.7
    conv = results["conversations"][1]
    assert (conv["executor"], conv["node"], conv["cell"]) == ("ray", "node-a", cells[1].cell_id)
    assert (tmp_path / conv["events_file"]).is_file()
    # the merged lines are a bench's results.jsonl: the bench's own reader takes them
    again = collect(tmp_path / "results.jsonl", environment={}, settings={}, complete=True)
    assert [p["pipeline"] for p in again["pipelines"]] == names


class Runner:
    """Runs cells from prepared outputs; interrupts at a chosen call, as Ctrl-C would."""

    def __init__(self, interrupt_at: int | None = None, exit_codes: dict[str, int] | None = None):
        self.calls: list[str] = []
        self.interrupt_at = interrupt_at
        self.exit_codes = exit_codes or {}

    def __call__(self, s: CellSpec) -> CellOutput:
        self.calls.append(s.label)
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        return bench_output(s, 0.5, self.exit_codes.get(s.label, 0))


def sweep(tmp_path: Path, cells: list[CellSpec]) -> tuple[int, dict[str, Any]]:
    console = Console(file=io.StringIO(), width=200)
    code = run_sweep(cells, tmp_path, {}, console, plots=False)
    return code, json.loads((tmp_path / "results.json").read_text())


def test_an_interrupted_sweep_keeps_what_finished_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [spec(f"vad.stop_ms={ms}") for ms in (200, 400, 600)]
    first = Runner(interrupt_at=2)
    monkeypatch.setattr(local, "run_cell", first)
    code, results = sweep(tmp_path, cells)
    assert code == 130
    assert first.calls == ["vad.stop_ms=200", "vad.stop_ms=400"]
    assert results["complete"] is False
    assert len(results["pipelines"]) == 1
    assert "Pareto front" in (tmp_path / "report.md").read_text()

    second = Runner()
    monkeypatch.setattr(local, "run_cell", second)
    code, results = sweep(tmp_path, cells)
    assert code == 0
    assert second.calls == ["vad.stop_ms=400", "vad.stop_ms=600"]  # the first was kept
    assert results["complete"] is True
    assert [c["cell"] for c in results["conversations"]] == [c.cell_id for c in cells]


def test_a_failed_cell_is_reported_and_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [spec("a.b=1"), spec("a.b=2")]
    monkeypatch.setattr(local, "run_cell", Runner(exit_codes={"a.b=2": 1}))
    code, results = sweep(tmp_path, cells)
    assert code == 1
    assert len(results["failures"]) == 1
    assert read_cell(tmp_path, cells[1])["status"] == "failed"  # type: ignore[index]
    again = Runner()
    monkeypatch.setattr(local, "run_cell", again)
    code, _ = sweep(tmp_path, cells)
    assert (code, again.calls) == (0, ["a.b=2"])
