"""PNG plots of a results document (matplotlib, Agg backend: no display needed).

* ``latency.png``: the voice-to-voice distribution per pipeline (box and points,
  and the cumulative distribution).
* ``waterfall.png``: per pipeline and per turn, the stages laid end to end from
  the true end of the user's speech to the first bot audio sample, with the
  unexplained gap in grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STAGE_COLORS", "plot_all", "plot_latency", "plot_waterfall"]

STAGE_COLORS = {
    "end_of_turn": "#8c6bb1",
    "stt_final": "#4e79a7",
    "llm_ttft": "#f28e2b",
    "tts_ttfa": "#59a14f",
    "s2s_ttfa": "#e15759",
    "output": "#76b7b2",
    "gap": "#bab0ac",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _replied(results: dict[str, Any], pipeline: str) -> list[dict[str, Any]]:
    return [
        t
        for t in results["turns"]
        if t.get("pipeline") == pipeline and t.get("v2v_s") is not None and not t.get("early")
    ]


def plot_latency(results: dict[str, Any], path: Path) -> Path | None:
    """Voice-to-voice latency per pipeline: box plot with points, and CDF."""
    names = [p["pipeline"] for p in results["pipelines"]]
    data = [[t["v2v_s"] * 1000 for t in _replied(results, n)] for n in names]
    if not any(data):
        return None
    plt = _pyplot()
    fig, (box, cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    positions = list(range(1, len(names) + 1))
    box.boxplot(
        [d or [float("nan")] for d in data], positions=positions, widths=0.5, showfliers=False
    )
    for x, values in zip(positions, data, strict=True):
        offsets = [x + (i % 7 - 3) * 0.03 for i in range(len(values))]
        box.scatter(offsets, values, s=14, alpha=0.7, zorder=3)
    box.set_xticks(positions, names, rotation=10)
    box.set_ylabel("voice-to-voice latency (ms)")
    box.set_title("Distribution per pipeline")
    box.grid(axis="y", alpha=0.3)
    for name, values in zip(names, data, strict=True):
        if not values:
            continue
        ordered = sorted(values)
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        cdf.step(ordered, ys, where="post", label=f"{name} (n={len(ordered)})")
    cdf.axvline(500, color="grey", linestyle=":", linewidth=1)
    cdf.set_xlabel("voice-to-voice latency (ms)")
    cdf.set_ylabel("fraction of turns")
    cdf.set_title("Cumulative distribution (dotted: 500 ms)")
    cdf.grid(alpha=0.3)
    cdf.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_waterfall(results: dict[str, Any], path: Path) -> Path | None:
    """Per turn, the stages end to end from the true end of speech (one panel per pipeline)."""
    names = [n for n in (p["pipeline"] for p in results["pipelines"]) if _replied(results, n)]
    if not names:
        return None
    plt = _pyplot()
    heights = [max(1.6, 0.32 * len(_replied(results, n)) + 0.9) for n in names]
    fig, axes = plt.subplots(
        len(names),
        1,
        figsize=(11, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    used: set[str] = set()
    for ax, name in zip(axes[:, 0], names, strict=True):
        turns = _replied(results, name)
        labels = []
        for y, t in enumerate(turns):
            left = 0.0
            segments = [(k, v) for k, v in t.get("stages", {}).items()]
            if t.get("gap_s") is not None:
                segments.append(("gap", t["gap_s"]))
            for stage, value in segments:
                width = value * 1000
                if stage == "end_of_turn":  # may be negative: the decision came early
                    ax.barh(y, width, left=0, color=STAGE_COLORS[stage], height=0.6)
                    left = width
                    used.add(stage)
                    continue
                ax.barh(y, width, left=left, color=STAGE_COLORS.get(stage, "#999"), height=0.6)
                used.add(stage)
                left += width
            ax.plot([t["v2v_s"] * 1000], [y], marker="|", color="black", markersize=12)
            labels.append(f"{t['conversation']} {t['turn']} ({t['kind']})")
        ax.set_yticks(range(len(turns)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{name}: from the true end of speech to the first bot sample (| = v2v)")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("milliseconds after the true end of the user's speech")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=STAGE_COLORS[s]) for s in STAGE_COLORS if s in used
    ]
    fig.legend(
        handles,
        [s for s in STAGE_COLORS if s in used],
        loc="upper right",
        fontsize=8,
        ncol=len(handles),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: dict[str, Any], folder: Path) -> list[str]:
    """Write both plots into ``folder``; returns the file names written."""
    written = []
    for name, fn in (("latency.png", plot_latency), ("waterfall.png", plot_waterfall)):
        if fn(results, folder / name) is not None:
            written.append(name)
    return written
