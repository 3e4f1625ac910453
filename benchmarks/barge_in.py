"""A focused barge-in measurement: many barge-ins, backchannels and sounds over a long reply.

The built-in corpus of ``parley bench`` has few barge-ins, and its replies are
short enough that the bot often finishes (or pauses between sentences) before
a barge-in takes effect. This corpus asks for a story each time, with a system
prompt for long replies, then speaks over the bot 0.2 s after its reply starts
(the speech itself 0.3 s later: the corpus pads each clip), inside the reply's
first clause even when a loaded CPU synthesises the next one late:

* barge-ins that open with a short word ("Wait, ...", "Stop.", "No, ...") and
  ones that open with a longer phrase;
* backchannels ("Yeah.", "Uh-huh.", "Okay.") and a throat-clearing sound
  ("Ahem."), which must not stop the bot.

It runs through ``parley bench`` (same scenario driver, same events and
measurements), then reads the events again for what the bench does not report:
for the speech that must not stop the bot, whether it did, and how long it
paused. ::

    python -m benchmarks.barge_in --out bench-results/barge-in
    python -m benchmarks.barge_in --out bench-results/barge-in-speech \\
        --set interruption.rule=speech

Arguments after the known ones go to ``parley bench`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency.script import Line

__all__ = ["SCRIPT", "main", "summarise"]

STORY = "Please tell me a long story about a dragon and a knight."
PROMPT = 'pipeline.system_prompt="You tell long stories of at least five sentences."'
SHORT_WORD = (
    "Wait, explain it like I am five years old.",
    "Stop, that is enough for now.",
    "No, I wanted a story about a cat.",
    "Hold on, what was the knight called?",
)
LONG_OPENING = (
    "Sorry to interrupt, what is your name?",
    "Actually, can you make it a funny story?",
    "Excuse me, could you speak more slowly?",
    "Could you tell me about the dragon instead?",
)
NOT_A_BARGE_IN = ("Yeah.", "Uh-huh.", "Okay.", "Ahem.")

SCRIPT: dict[str, list[Line]] = {
    **{
        f"short-{k}": [Line("normal", STORY), Line("barge_in", text, delay_s=0.2)]
        for k, text in enumerate(SHORT_WORD, start=1)
    },
    **{
        f"long-{k}": [Line("normal", STORY), Line("barge_in", text, delay_s=0.2)]
        for k, text in enumerate(LONG_OPENING, start=1)
    },
    **{
        f"over-{k}": [
            Line("normal", STORY),
            Line("normal", text, trigger="during_reply", delay_s=0.2),
        ]
        for k, text in enumerate(NOT_A_BARGE_IN, start=1)
    },
}
"""The conversations: a story request, then one item over the bot's reply."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(out: Path) -> dict[str, Any]:
    """Read a finished run's results and events; the figures this measurement is about."""
    turns = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    turns = [t for t in turns if t.get("type") == "turn" and t.get("trigger") == "during_reply"]
    barge = [t for t in turns if t["kind"] == "barge_in"]
    summary: dict[str, Any] = {}
    for name, group in (
        ("all", barge),
        ("short word", [t for t in barge if t["conversation"].startswith("short")]),
        ("long opening", [t for t in barge if t["conversation"].startswith("long")]),
    ):
        ms = [t["barge_in_s"] * 1000 for t in group if t.get("barge_in_s") is not None]
        first_word_kept = sum(
            1
            for t in group
            if (t.get("hypothesis") or "").split()
            and _first_word(t["transcript"]) in (t.get("hypothesis") or "").lower()
        )
        summary[name] = {
            "measured": f"{len(ms)} / {len(group)}",
            "p50_ms": round(statistics.median(ms)) if ms else None,
            "p90_ms": round(_percentile(ms, 0.9)) if ms else None,
            "max_ms": round(max(ms)) if ms else None,
            "first_word_transcribed": f"{first_word_kept} / {len(group)}",
        }
    summary["not a barge-in"] = [_over(out, t) for t in turns if t["kind"] != "barge_in"]
    return summary


def _first_word(text: str) -> str:
    return text.split()[0].strip(",.!?").lower()


def _over(out: Path, turn: dict[str, Any]) -> dict[str, Any]:
    """What speech over the bot that is no barge-in did: stopped it, paused it, replies."""
    events_dir = next((out / "events").iterdir())
    records = [
        json.loads(line)
        for line in (events_dir / f"{turn['conversation']}.jsonl").read_text().splitlines()
    ]
    item = [r for r in records if r["event"] == "scenario_item"][-1]
    after = [r for r in records if r["t_ns"] >= item["t_ns"]]
    paused = [r["t_ns"] for r in after if r["event"] == "bot_audio_paused"]
    resumed = [r["t_ns"] for r in after if r["event"] == "bot_audio_resumed"]
    gaps = [(b - a) / 1e6 for a, b in zip(paused, resumed, strict=False)]
    return {
        "said": turn["transcript"],
        "bot_stopped": any(r["event"] == "bot_audio_stopped" and r["interrupted"] for r in after),
        "replies_after": sum(1 for r in after if r["event"] == "llm_response_start"),
        "paused_ms": round(sum(gaps)) if gaps else 0,
        "decision": next(
            (
                f"{r['event']}: {r.get('reason')} ({r.get('text')!r})"
                for r in after
                if r["event"] in ("barge_in", "barge_in_ignored")
            ),
            "-",
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the corpus (cached), run ``parley bench`` on it, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.barge_in", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder of the run")
    parser.add_argument("--pipeline", default="cascade-local", help="pipeline to measure")
    parser.add_argument("--max-tokens", type=int, default=40, help="llm.max_tokens")
    args, rest = parser.parse_known_args(argv)
    from benchmarks.latency.cli import main as bench
    from benchmarks.latency.generate import builtin_corpus

    corpus = builtin_corpus(script=SCRIPT)
    code = bench(
        [
            args.pipeline,
            "--corpus",
            str(corpus),
            "--out",
            str(args.out),
            "--no-plots",
            "--set",
            PROMPT,
            "--set",
            f"llm.max_tokens={args.max_tokens}",
            *rest,
        ]
    )
    if code != 0 or not (args.out / "results.jsonl").is_file():
        return code or 1
    summary = summarise(args.out)
    (args.out / "barge-in.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
