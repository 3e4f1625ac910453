"""Reports: the results JSON, the terminal table and the Markdown report.

:func:`collect` turns the ``results.jsonl`` lines the runner appended into the
results document (every raw measurement, per-pipeline summaries, the environment),
which :func:`write_results` saves as ``results.json``. :func:`summary_table` is the
side-by-side table (p50 / p90 / p99 per pipeline and per stage), printed with rich
in the terminal and rendered as Markdown by :func:`markdown_report`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency.stats import summarize_pipeline

__all__ = [
    "ROWS",
    "collect",
    "format_cell",
    "markdown_report",
    "print_table",
    "read_results",
    "summary_table",
    "write_results",
]

SCHEMA = "parley-bench/1"

# (label, key in the summary, unit: "ms", "%", "n" or "x")
ROWS: tuple[tuple[str, str, str], ...] = (
    ("voice-to-voice", "v2v_s", "ms"),
    ("  heard (first audible)", "heard_s", "ms"),
    ("end of turn", "stage.end_of_turn", "ms"),
    ("STT final", "stage.stt_final", "ms"),
    ("LLM time to first token", "stage.llm_ttft", "ms"),
    ("TTS time to first audio", "stage.tts_ttfa", "ms"),
    ("  LLM first clause", "sub.llm_first_clause", "ms"),
    ("  TTS synthesis", "sub.tts_synth", "ms"),
    ("S2S time to first audio", "stage.s2s_ttfa", "ms"),
    ("output transport", "stage.output", "ms"),
    ("network path (live transport)", "stage.transport", "ms"),
    ("  client to server", "sub.transport_in", "ms"),
    ("  server to client", "sub.transport_out", "ms"),
    ("unexplained gap", "gap_s", "ms"),
    ("barge-in (to last bot sample)", "barge_in_s", "ms"),
    ("  detection", "barge_detect_s", "ms"),
    ("  short-word barge-in", "barge_in_short_s", "ms"),
    ("WER", "wer", "%"),
    ("reply words", "reply_words", "x"),
    ("reply audio (s)", "reply_audio_s", "x"),
)


def read_results(path: Path) -> dict[str, Any]:
    """Read a ``results.json`` written by :func:`write_results`."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a parley bench results file (schema {SCHEMA})")
    return data


def collect(
    jsonl: Path, *, environment: dict[str, Any], settings: dict[str, Any], complete: bool
) -> dict[str, Any]:
    """The results document from the runner's ``results.jsonl``."""
    pipelines: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    conversations: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    if jsonl.is_file():
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            kind = record.pop("type", "")
            target = {
                "pipeline": pipelines,
                "turn": turns,
                "conversation": conversations,
                "failure": failures,
            }.get(kind)
            if target is not None:
                target.append(record)
    summary = {
        p["pipeline"]: summarize_pipeline(
            [t for t in turns if t.get("pipeline") == p["pipeline"]],
            [c for c in conversations if c.get("pipeline") == p["pipeline"]],
        )
        for p in pipelines
    }
    return {
        "schema": SCHEMA,
        "complete": complete,
        "settings": settings,
        "environment": environment,
        "pipelines": pipelines,
        "summary": summary,
        "conversations": conversations,
        "turns": turns,
        "failures": failures,
    }


def write_results(results: dict[str, Any], path: Path) -> None:
    """Save the results document as JSON."""
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")


def format_cell(stats: dict[str, Any], unit: str) -> str:
    """``p50 / p90 / p99`` of one metric, in ms, % or plain numbers; "-" when empty."""
    if not stats or not stats.get("n"):
        return "-"

    def fmt(value: float) -> str:
        if unit == "ms":
            return f"{value * 1000:.0f}"
        if unit == "%":
            return f"{value * 100:.1f}"
        return f"{value:.1f}"

    if unit == "%":
        return f"{fmt(stats['mean'])} (mean, n={stats['n']})"
    return f"{fmt(stats['p50'])} / {fmt(stats['p90'])} / {fmt(stats['p99'])}"


def _count_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    counts, cost = summary.get("counts", {}), summary.get("cost", {})
    gap = counts.get("max_abs_gap_s")
    usd = cost.get("usd_per_min")
    return [
        ("turns (replied / total)", f"{counts.get('replied', 0)} / {counts.get('turns', 0)}"),
        ("turns split by the VAD", str(counts.get("split_turns", 0))),
        ("turns the bot talked over", str(counts.get("talked_over", 0))),
        (
            "talk-over (turns / s of bot audio)",
            f"{counts.get('talk_over_turns', 0)} / {counts.get('talk_over_s', 0):.1f}",
        ),
        (
            "false ends of turn (ends / turns)",
            f"{counts.get('false_ends', 0)} / {counts.get('false_end_turns', 0)}",
        ),
        ("user words lost from the context", _words_cell(counts)),
        (
            "backchannels that stopped the bot",
            f"{counts.get('backchannels_stopped_bot', 0)} / {counts.get('backchannels', 0)}",
        ),
        (
            "barge-ins measured",
            f"{counts.get('barge_ins_measured', 0)} / {counts.get('barge_ins', 0)}",
        ),
        (
            "false turns / interruptions",
            f"{counts.get('false_turns', 0)} / {counts.get('false_interruptions', 0)}"
            f" (in {counts.get('silence_exposure_s', 0):.0f} s noise/silence)",
        ),
        ("largest gap (ms, absolute)", "-" if gap is None else f"{gap * 1000:.1f}"),
        ("CPU s per conversation min", _num(cost.get("process_cpu_s_per_min"))),
        ("  of which model stages", _num(cost.get("stage_cpu_s_per_min"))),
        ("USD per conversation min", "-" if not usd else f"{usd:.4f}"),
    ]


def _words_cell(counts: dict[str, Any]) -> str:
    """``lost (missing) / words``: words the turn-taking dropped, and all the missing ones."""
    if counts.get("context_words") is None:
        return "-"
    return f"{counts['context_lost']} ({counts['context_missing']}) / {counts['context_words']}"


KIND_HEADER = (
    "kind",
    "turns",
    "replied",
    "v2v p50",
    "talk-over turns",
    "false ends",
    "split",
    "words lost (missing) / words",
    "barge-in p50",
    "WER",
    "bot stopped",
)


def kind_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per kind of turn: the turn-taking counts and the key latencies."""
    rows = []
    for kind, k in summary.get("by_kind", {}).items():
        v2v, barge, wer_ = k.get("v2v_s", {}), k.get("barge_in_s", {}), k.get("wer", {})
        rows.append(
            [
                kind,
                str(k.get("turns", 0)),
                str(k.get("replied", 0)),
                _ms(v2v.get("p50")) if v2v.get("n") else "-",
                str(k.get("talk_over_turns", 0)),
                str(k.get("false_ends", 0)),
                str(k.get("split_turns", 0)),
                _words_cell(k),
                _ms(barge.get("p50")) if barge.get("n") else "-",
                f"{wer_['mean'] * 100:.1f} %" if wer_.get("n") else "-",
                f"{k['backchannels_stopped_bot']} / {k['backchannels']}"
                if k.get("backchannels")
                else "-",
            ]
        )
    return rows


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def summary_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the side-by-side table (cells: p50 / p90 / p99, ms)."""
    names = [p["pipeline"] for p in results["pipelines"]]
    header = ["metric", *names]
    rows: list[list[str]] = []
    for label, key, unit in ROWS:
        cells = [format_cell(results["summary"].get(n, {}).get(key, {}), unit) for n in names]
        if any(c != "-" for c in cells):
            rows.append([label, *cells])
    extra = [_count_rows(results["summary"].get(n, {})) for n in names]
    if extra:
        for i, (label, _value) in enumerate(extra[0]):
            rows.append([label, *(e[i][1] for e in extra)])
    return header, rows


def print_table(results: dict[str, Any], console: Any = None) -> None:
    """Print the summary table with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    header, rows = summary_table(results)
    title = "parley bench: p50 / p90 / p99 (ms unless noted)"
    if not results.get("complete", True):
        title += " [interrupted: partial results]"
    table = Table(title=title, show_lines=False)
    table.add_column(header[0], style="bold")
    for name in header[1:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for name in header[1:]:
        by_kind = kind_rows(results["summary"].get(name, {}))
        if not by_kind:
            continue
        kinds = Table(title=f"{name}: turn-taking by kind of turn (ms)")
        for n, column in enumerate(KIND_HEADER):
            kinds.add_column(column, justify="left" if n == 0 else "right")
        for row in by_kind:
            kinds.add_row(*row)
        console.print(kinds)


def _md_cell(cell: object) -> str:
    text = str(cell).replace("|", "\\|")
    stripped = text.lstrip(" ")
    return ("\u2003" + stripped) if len(stripped) < len(text) else text  # keep indents


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "r") -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|---|" + "|".join(("---:" if align == "r" else "---") for _ in header[1:]) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 1000:.0f}"


def _turn_rows(results: dict[str, Any], pipeline: str) -> list[list[str]]:
    rows = []
    for t in results["turns"]:
        if t.get("pipeline") != pipeline or t.get("speech_end_s") is None:
            continue
        stages = t.get("stages", {})
        rows.append(
            [
                f"{t['conversation']} {t['turn']}",
                t["kind"] + (f" {t['snr_db']:.0f} dB" if t.get("snr_db") is not None else ""),
                _ms(t.get("v2v_s")),
                " + ".join(_ms(v) for v in stages.values()) or "-",
                _ms(t.get("gap_s")),
                _ms(t.get("barge_in_s")),
                "-" if t.get("wer") is None else f"{t['wer'] * 100:.0f}%",
                _ms(t.get("talk_over_s")) if t.get("talk_over_s") else "-",
                str(t.get("false_ends") or "-"),
                "-"
                if t.get("context_words") is None
                else f"{t['context_lost']} ({t['context_missing']}) / {t['context_words']}",
                str(t.get("reply_words", 0)),
                "; ".join(_turn_notes(t)),
            ]
        )
    return rows


def _turn_notes(t: dict[str, Any]) -> list[str]:
    notes = list(t.get("notes", []))
    if t.get("vad_turns", 0) > 1:
        notes.append(f"split in {t['vad_turns']} by the VAD")
    if t.get("talk_overs"):
        notes.append("bot talked over the user")
    if t.get("bot_stopped") and "a backchannel stopped the bot" not in notes:
        notes.append("a backchannel stopped the bot")
    return notes


def markdown_report(results: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """The whole report as Markdown (plots referenced by file name)."""
    env, settings = results.get("environment", {}), results.get("settings", {})
    header, rows = summary_table(results)
    parts = ["# parley bench report", ""]
    if not results.get("complete", True):
        parts += ["**Interrupted: these are the results measured before the stop.**", ""]
    parts += [
        f"Corpus `{settings.get('corpus', '?')}` ({settings.get('corpus_digest', '?')}), "
        f"{settings.get('conversations', '?')} conversation(s), quick={settings.get('quick')}. "
        f"Machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores, "
        f"Python {env.get('python', '?')}, commit {str(env.get('git', {}).get('commit'))[:10]}"
        + (" (dirty)" if env.get("git", {}).get("dirty") else "")
        + ".",
        "",
        "Cells are p50 / p90 / p99 in milliseconds. Voice-to-voice runs from the true end of "
        "the user's speech (from the corpus) to the first bot audio sample leaving the output "
        "transport; the stages add up to it, and the unexplained gap is what no stage covers.",
        "",
        "Turn-taking: a talk-over is bot audio played inside a user utterance (pauses "
        "included) from a reply that started after it began; a false end is a turn ended "
        "before the utterance's last word; user words lost are the utterance's words (as "
        "normalised for the WER) that the speech-to-text transcribed and that have no "
        "word in their place in the user messages of the final LLM context, with all the "
        "missing ones, recognition errors included, in brackets.",
        "",
        _md_table(header, rows),
        "",
    ]
    if any(p.get("transport", "file") != "file" for p in results["pipelines"]):
        parts += [
            "Over a live transport (`@webrtc`), voice-to-voice runs from the speech end as the "
            "client sent it to the first audible bot sample the client received; compare it "
            "with the file transport's *heard* row. The network path stage holds the rest: "
            "Opus, the packets and the jitter buffers, both ways.",
            "",
        ]
    for name in plots:
        parts += [f"![{name}]({name})", ""]
    for p in results["pipelines"]:
        name = p["pipeline"]
        parts += [
            f"## {name}",
            "",
            f"`{p['file']}` ({p['architecture']}; sha256 {p['sha256'][:12]}): {p['description']}",
            "",
        ]
        turn_rows = _turn_rows(results, name)
        if turn_rows:
            stage_names = (
                "eot + s2s + out (ms)"
                if p["architecture"] == "s2s"
                else "eot + stt + llm + tts + out (ms)"
            )
            parts += [
                _md_table(
                    [
                        "turn",
                        "kind",
                        "v2v",
                        stage_names,
                        "gap",
                        "barge-in",
                        "WER",
                        "talk-over",
                        "false ends",
                        "words lost (missing) / words",
                        "reply words",
                        "notes",
                    ],
                    turn_rows,
                ),
                "",
            ]
        by_kind = kind_rows(results["summary"].get(name, {}))
        if by_kind:
            parts += [
                "Turn-taking by kind of turn (v2v and barge-in p50 in ms):",
                "",
                _md_table(KIND_HEADER, by_kind),
                "",
            ]
        for c in results["conversations"]:
            if c.get("pipeline") == name and (c.get("task_errors") or c.get("errors")):
                parts += [f"- errors in {c['conversation']}: {c.get('task_errors') or c['errors']}"]
    for f in results.get("failures", []):
        parts += [f"- **{f['file']} failed**: {f['error']}"]
    return "\n".join(parts).rstrip() + "\n"
