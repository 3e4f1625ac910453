"""The Pareto report of a sweep: voice-to-voice p50 against WER and talk-overs.

Each configuration (a pipeline under one set of grid values) is a point with
three costs, all to be minimised:

* voice-to-voice p50, over the turns it replied to (as the bench summarises them);
* WER, the mean over the user turns (the bench's figure);
* talk-overs, the share of user turns during which the bot started a reply before
  the user had finished (the ``talk_overs`` count the bench keeps per turn).

A configuration is *dominated* when another is at least as good on all three and
better on one; the others form the front. A configuration missing one of the
figures (no reply measured, say) is listed but not ranked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SweepPoint",
    "dominates",
    "pareto_front",
    "pareto_markdown",
    "plot_pareto",
    "sweep_points",
]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere (minimising)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]]) -> list[bool]:
    """For each point, whether no other point dominates it."""
    return [not any(dominates(other, point) for other in points) for point in points]


@dataclass
class SweepPoint:
    """One configuration's figures in the Pareto report."""

    name: str
    pipeline: str
    configuration: str
    v2v_p50_s: float | None
    v2v_p90_s: float | None
    wer: float | None
    talked_over: int | None
    turns: int
    replied: int
    front: bool | None = None
    """True on the front, False when dominated, None when not ranked."""

    @property
    def talk_over_rate(self) -> float | None:
        """Share of the user turns the bot talked over."""
        if self.talked_over is None or not self.turns:
            return None
        return self.talked_over / self.turns

    @property
    def costs(self) -> tuple[float, float, float] | None:
        """The three costs, or None when one is unknown."""
        rate = self.talk_over_rate
        if self.v2v_p50_s is None or self.wer is None or rate is None:
            return None
        return (self.v2v_p50_s, self.wer, rate)


def _talked_over(turns: list[dict[str, Any]]) -> int | None:
    """User turns the bot talked over, from the per-turn counts (None if not recorded)."""
    if not turns or any("talk_overs" not in t for t in turns):
        return None
    return sum(1 for t in turns if (t.get("talk_overs") or 0) > 0)


def sweep_points(results: dict[str, Any]) -> list[SweepPoint]:
    """One point per configuration of a merged results document, front marked."""
    points: list[SweepPoint] = []
    for p in results["pipelines"]:
        name = p["pipeline"]
        summary = results["summary"].get(name, {})
        speech = [
            t
            for t in results["turns"]
            if t.get("pipeline") == name and t.get("speech_end_s") is not None
        ]
        v2v, wer = summary.get("v2v_s", {}), summary.get("wer", {})
        counts = summary.get("counts", {})
        points.append(
            SweepPoint(
                name=name,
                pipeline=p.get("base_pipeline", name),
                configuration=p.get("configuration", ""),
                v2v_p50_s=v2v.get("p50"),
                v2v_p90_s=v2v.get("p90"),
                wer=wer.get("mean"),
                talked_over=_talked_over(speech),
                turns=int(counts.get("turns", len(speech))),
                replied=int(counts.get("replied", 0)),
            )
        )
    ranked = [pt for pt in points if pt.costs is not None]
    for pt, on_front in zip(
        ranked, pareto_front([pt.costs for pt in ranked if pt.costs]), strict=True
    ):
        pt.front = on_front
    return points


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def pareto_markdown(points: Sequence[SweepPoint]) -> str:
    """The table, fastest first, front members in bold and starred."""
    header = (
        "| | pipeline | configuration | v2v p50 (ms) | v2v p90 (ms) | WER (mean) "
        "| talked over | replied / turns |\n|---|---|---|---:|---:|---:|---:|---:|"
    )
    rows = []
    ordered = sorted(points, key=lambda pt: (pt.v2v_p50_s is None, pt.v2v_p50_s or 0.0))
    for pt in ordered:
        mark = {True: "**\u2605**", False: "", None: "n/r"}[pt.front]
        talked = "-" if pt.talked_over is None else f"{pt.talked_over} ({_pct(pt.talk_over_rate)})"
        config = pt.configuration.replace("|", "\\|") or "as configured"
        if pt.front:
            config = f"**{config}**"
        rows.append(
            f"| {mark} | {pt.pipeline} | {config} | {_ms(pt.v2v_p50_s)} | {_ms(pt.v2v_p90_s)} "
            f"| {_pct(pt.wer)} | {talked} | {pt.replied} / {pt.turns} |"
        )
    legend = (
        "\u2605 on the Pareto front: no other configuration is as good on voice-to-voice p50, "
        "WER and talk-overs and better on one of them. n/r: not ranked (a figure is missing)."
    )
    return "\n".join([header, *rows, "", legend]) + "\n"


def plot_pareto(points: Sequence[SweepPoint], path: Path) -> Path | None:
    """Two scatter plots against voice-to-voice p50: WER, and talk-overs; front marked."""
    ranked = [pt for pt in points if pt.costs is not None]
    if not ranked:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels: tuple[tuple[str, Callable[[SweepPoint], float | None]], ...] = (
        ("WER (mean, %)", _wer),
        ("turns talked over (%)", _rate),
    )
    for ax, (ylabel, value) in zip(axes, panels, strict=True):
        for on_front, style in (
            (False, {"marker": "o", "color": "#bab0ac", "s": 36}),
            (True, {"marker": "*", "color": "#e15759", "s": 160}),
        ):
            chosen = [pt for pt in ranked if pt.front is on_front]
            ax.scatter(
                [(pt.v2v_p50_s or 0.0) * 1000 for pt in chosen],
                [(value(pt) or 0.0) * 100 for pt in chosen],
                label="Pareto front" if on_front else "dominated",
                zorder=3 if on_front else 2,
                **style,
            )
        single = len({pt.pipeline for pt in ranked}) == 1
        for pt in ranked:
            ax.annotate(
                pt.configuration if single else f"{pt.pipeline} {pt.configuration}",
                ((pt.v2v_p50_s or 0.0) * 1000, (value(pt) or 0.0) * 100),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
                color="black" if pt.front else "#6f6f6f",
            )
        ax.margins(0.2)
        ax.set_xlabel("voice-to-voice p50 (ms)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle("Sweep: the front is computed on all three costs at once", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _wer(pt: SweepPoint) -> float | None:
    return pt.wer


def _rate(pt: SweepPoint) -> float | None:
    return pt.talk_over_rate
