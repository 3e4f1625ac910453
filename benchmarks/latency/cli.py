"""Command line of the latency benchmark (``parley bench``).

::

    parley bench [PIPELINES...] [--quick] [--corpus DIR] [--out DIR] [--turns N]
                 [--set KEY=VALUE] [--transport file,webrtc] [--audio] [--no-plots]
    parley bench compare A.json B.json
    parley bench report OUT_DIR       (measure a run again from its saved events)
    parley bench sweep --grid KEY=V1,V2 ...   (a grid of settings: benchmarks.sweep)

Without pipelines it runs ``cascade-local`` and ``realtime-local``, plus
``cascade-openai`` and ``realtime-openai`` when ``OPENAI_API_KEY`` is set.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency.selection import (
    choose_conversations,
    default_pipelines,
    load_chosen_corpus,
    overrides_for,
)
from benchmarks.options import add_corpus_options

__all__ = ["main"]

_CORPUS_HELP = """\
your own recordings (--corpus DIR): DIR/manifest.jsonl, one JSON object per item, e.g.
  {"conversation": "c1", "turn": 1, "kind": "normal", "audio": "c1-1.wav",
   "transcript": "Book a table for two.", "speech_start_s": 0.31, "speech_end_s": 1.92}
kind: normal | barge_in (talks over the bot, delay_s after it starts) | noise (snr_db)
| silence (no speech: audio or duration_s) | hesitation (pauses: [[start_s, end_s], ...])
| one_word | backchannel (over the bot, expects no reply) | short_barge_in ("Wait, ...").
Optional: gap_s, delay_s, words, pauses, trigger, reply_expected.
"""
TRANSPORTS = ("file", "webrtc")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley bench",
        description="Voice-to-voice latency benchmark: the same spoken conversation through "
        "several pipelines, per turn and per stage. 'parley bench compare A.json B.json' "
        "compares two runs; 'parley bench report DIR' measures a run again from its events.",
        epilog=_CORPUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_corpus_options(parser, out_default="bench-results/<date-time>")
    parser.add_argument(
        "--transport",
        default="file",
        help="file (the conversation played in-process), webrtc (spoken by an aiortc client "
        "to a live server on 127.0.0.1, so the network path counts), or both: file,webrtc",
    )
    parser.add_argument("--audio", action="store_true", help="save a stereo WAV per conversation")
    return parser


def _compare(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="parley bench compare", description="Compare the medians of two bench runs."
    )
    parser.add_argument("a", type=Path, help="results.json of the first run")
    parser.add_argument("b", type=Path, help="results.json of the second run")
    args = parser.parse_args(argv)
    from benchmarks.latency.compare import print_comparison

    for path in (args.a, args.b):
        if not path.is_file():
            parser.error(f"{path}: no such results file")
    try:
        return print_comparison(args.a, args.b)
    except ValueError as exc:
        print(f"parley bench compare: {exc}")
        return 2


def _report_again(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="parley bench report",
        description="Measure a finished run again from its saved events and rewrite its reports.",
    )
    parser.add_argument("out", type=Path, help="the run's output folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    from rich.console import Console

    from benchmarks.latency.report import read_results
    from benchmarks.latency.runner import remeasure

    old = args.out / "results.json"
    if not (args.out / "results.jsonl").is_file() or not old.is_file():
        parser.error(f"{args.out}: not a bench output folder (no results.jsonl / results.json)")
    previous = read_results(old)
    remeasure(args.out)
    _write_reports(
        args.out,
        Console(),
        previous["environment"],
        previous["settings"],
        previous.get("complete", True),
        plots=not args.no_plots,
    )
    return 0


def _write_reports(
    out: Path,
    console: Any,
    env: dict[str, Any],
    settings: dict[str, Any],
    complete: bool,
    *,
    plots: bool,
) -> dict[str, Any]:
    """results.json, the plots and report.md from results.jsonl; prints the table."""
    from benchmarks.latency.report import collect, markdown_report, print_table, write_results

    results = collect(out / "results.jsonl", environment=env, settings=settings, complete=complete)
    write_results(results, out / "results.json")
    written: list[str] = []
    if plots and results["turns"]:
        try:
            from benchmarks.latency.plots import plot_all

            written = plot_all(results, out)
        except ImportError:
            console.print("(plots skipped: pip install matplotlib)")
    (out / "report.md").write_text(markdown_report(results, written), encoding="utf-8")
    print_table(results, console)
    console.print(f"results: {out / 'results.json'}  report: {out / 'report.md'}", markup=False)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``parley bench``; returns the exit code (130 when interrupted)."""
    import sys

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "compare":
        return _compare(args_list[1:])
    if args_list and args_list[0] == "report":
        return _report_again(args_list[1:])
    args = _parser().parse_args(args_list)
    transports = [t.strip() for t in args.transport.split(",") if t.strip()]
    unknown = [t for t in transports if t not in TRANSPORTS]
    if unknown or not transports:
        _parser().error(
            f"--transport: unknown {unknown[0] if unknown else args.transport!r}; "
            f"choose from {', '.join(TRANSPORTS)} (comma-separated)"
        )
    args.transport = list(dict.fromkeys(transports))
    from rich.console import Console

    from benchmarks.latency.corpus import CorpusError
    from pipelines.shipped import resolve_pipeline

    console = Console()
    names = args.pipelines or default_pipelines()
    paths = [resolve_pipeline(n) for n in names]
    for path in paths:
        if not path.is_file():
            console.print(f"parley bench: no pipeline file {path}")
            return 2
    try:
        corpus = load_chosen_corpus(args.corpus, console)
        conversations = choose_conversations(
            corpus, args.conversation, quick=args.quick, turns=args.turns
        )
    except CorpusError as exc:
        print(f"parley bench: {exc}", file=sys.stderr)  # one line, however wide the terminal
        return 2
    if not conversations:
        console.print("parley bench: nothing to play (no conversation left)")
        return 2
    out = args.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    return _run(args, console, paths, corpus, conversations, out)


def _run(
    args: argparse.Namespace,
    console: Any,
    paths: list[Path],
    corpus: Any,
    conversations: list[Any],
    out: Path,
) -> int:
    import anyio

    from benchmarks.latency.environment import environment
    from benchmarks.latency.progress import BenchProgress
    from benchmarks.latency.runner import BenchPlan, run_bench
    from benchmarks.latency.scenario import ScenarioParams

    scenario = ScenarioParams(lead_in_s=0.5, tail_s=0.5) if args.quick else ScenarioParams()
    settings = {
        "quick": args.quick,
        "corpus": str(corpus.path),
        "corpus_source": corpus.source,
        "corpus_digest": corpus.digest,
        "conversations": len(conversations),
        "turns_per_pipeline": sum(c.turns for c in conversations),
        "turns_limit": args.turns,
        "overrides": args.set,
        "transports": args.transport,
        "scenario": scenario.model_dump(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    plan = BenchPlan(
        pipelines=paths,
        conversations=conversations,
        out_dir=out,
        scenario=scenario,
        corpus=corpus,
        save_audio=args.audio,
        settings=settings,
        overrides={p: overrides_for(p, args.set) for p in paths},
        transports=args.transport,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").unlink(missing_ok=True)
    console.print(
        f"parley bench: {len(paths)} pipeline(s) x {len(conversations)} conversation(s), "
        f"{settings['turns_per_pipeline']} turns each, played in real time -> {out}"
    )
    env = environment()
    with BenchProgress(console, paths, conversations) as progress:
        complete = anyio.run(run_bench, plan, progress)
    settings["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results = _write_reports(out, console, env, settings, complete, plots=not args.no_plots)
    if results["failures"]:
        for failure in results["failures"]:
            console.print(f"FAILED {failure['file']}: {failure['error']}", markup=False)
        return 1
    return 0 if complete else 130
