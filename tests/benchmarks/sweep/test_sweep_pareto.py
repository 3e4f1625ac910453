"""The Pareto front of a sweep and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.sweep.pareto import (
    dominates,
    pareto_front,
    pareto_markdown,
    plot_pareto,
    sweep_points,
)

# small integers make ties and equal points common, which is where fronts go wrong
costs = st.lists(
    st.tuples(*(st.integers(0, 4) for _ in range(3))).map(lambda t: tuple(float(x) for x in t)),
    max_size=25,
)


@given(costs)
def test_no_front_member_is_dominated(points: list[tuple[float, ...]]) -> None:
    front = pareto_front(points)
    for point, member in zip(points, front, strict=True):
        if member:
            assert not any(dominates(other, point) for other in points)


@given(costs)
def test_every_other_point_is_dominated_by_a_front_member(points: list[tuple[float, ...]]) -> None:
    front = pareto_front(points)
    members = [p for p, m in zip(points, front, strict=True) if m]
    for point, member in zip(points, front, strict=True):
        if not member:
            assert any(dominates(m, point) for m in members)


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=20))
def test_a_non_empty_set_has_a_front(points: list[tuple[float, float]]) -> None:
    assert any(pareto_front(points))


def test_dominance_needs_one_strictly_better_cost() -> None:
    assert dominates((1, 1, 1), (1, 2, 1))
    assert not dominates((1, 1, 1), (1, 1, 1))
    assert not dominates((1, 3, 1), (2, 2, 2))
    assert pareto_front([(1.0, 1.0), (1.0, 1.0), (2.0, 2.0)]) == [True, True, False]


def _results(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A merged results document with one pipeline per configuration."""
    pipelines, turns, summary = [], [], {}
    for name, c in configs.items():
        pipelines.append(
            {"pipeline": name, "base_pipeline": "cascade-local-fast", "configuration": name}
        )
        for i, over in enumerate(c["talk_overs"]):
            turn: dict[str, Any] = {"pipeline": name, "speech_end_s": 1.0 + i}
            if over is not None:
                turn["talk_overs"] = over
            turns.append(turn)
        summary[name] = {
            "v2v_s": {"n": 1, "p50": c["v2v"], "p90": c["v2v"]} if c["v2v"] else {"n": 0},
            "wer": {"n": 1, "mean": c["wer"]},
            "counts": {"turns": len(c["talk_overs"]), "replied": len(c["talk_overs"])},
        }
    return {"pipelines": pipelines, "turns": turns, "summary": summary}


RESULTS = _results(
    {
        "fast": {"v2v": 0.4, "wer": 0.10, "talk_overs": [0, 1, 0, 0]},
        "accurate": {"v2v": 0.8, "wer": 0.02, "talk_overs": [0, 0, 0, 0]},
        "worse": {"v2v": 0.9, "wer": 0.10, "talk_overs": [0, 1, 0, 0]},
        "silent": {"v2v": None, "wer": 0.0, "talk_overs": [0, 0, 0, 0]},
    }
)


def test_points_read_the_bench_figures_and_mark_the_front() -> None:
    points = {p.name: p for p in sweep_points(RESULTS)}
    assert points["fast"].front is True
    assert points["accurate"].front is True
    assert points["worse"].front is False
    assert points["silent"].front is None  # no reply measured: listed, not ranked
    assert points["fast"].talked_over == 1
    assert points["fast"].talk_over_rate == 0.25
    assert points["accurate"].costs == (0.8, 0.02, 0.0)


def test_talk_overs_not_recorded_are_unknown_not_zero() -> None:
    results = _results({"old": {"v2v": 0.5, "wer": 0.1, "talk_overs": [None, None]}})
    (point,) = sweep_points(results)
    assert point.talked_over is None
    assert point.front is None


def test_the_table_stars_the_front_fastest_first() -> None:
    table = pareto_markdown(sweep_points(RESULTS))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[3].strip() for r in rows[1:]] == [
        "**fast**",
        "**accurate**",
        "worse",
        "silent",
    ]
    assert rows[1].startswith("| **\u2605** |")
    assert rows[3].startswith("|  |")
    assert "| 400 | 400 | 10.0 % | 1 (25.0 %) | 4 / 4 |" in rows[1]
    assert rows[4].startswith("| n/r |")


def test_the_plot_is_written(tmp_path: Path) -> None:
    path = plot_pareto(sweep_points(RESULTS), tmp_path / "pareto.png")
    assert path is not None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_pareto(sweep_points(_results({})), tmp_path / "none.png") is None
