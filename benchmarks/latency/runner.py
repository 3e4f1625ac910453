"""Running the benchmark: every pipeline file over every conversation, results kept as measured.

For each pipeline file the runner loads and validates it, enters
``pipelines.launch.prepared(config)`` (which starts what the file asks for, such as
a local ``parley serve``), and for each conversation builds a session with
:func:`pipelines.factory.build_session` around a :class:`ScenarioTransport` and an
:class:`~processors.recording.events.EventLog`, runs it to the end and measures
it. Each conversation's measurements are appended to ``results.jsonl`` as soon as
they exist, and its raw events are streamed to ``events/<pipeline>/<conv>.jsonl``,
so an interrupted bench keeps everything measured so far.

A first Ctrl-C (SIGINT or SIGTERM) cancels the conversation in progress, measures
what it got and stops; a second one stops at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from benchmarks.latency.corpus import Corpus, CorpusConversation
from benchmarks.latency.measure import measure_conversation
from benchmarks.latency.scenario import ScenarioParams, ScenarioTransport
from benchmarks.latency.turntaking import record_context

__all__ = ["BenchPlan", "ResultsWriter", "children_cpu_s", "run_bench"]

log = logging.getLogger("parley.bench")


@dataclass
class BenchPlan:
    """What to run: pipeline files, conversations, and where to write."""

    pipelines: list[Path]
    conversations: list[CorpusConversation]
    out_dir: Path
    scenario: ScenarioParams = field(default_factory=ScenarioParams)
    corpus: Corpus | None = None
    save_audio: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: dict[Path, list[str]] = field(default_factory=dict)
    transports: list[str] = field(default_factory=lambda: ["file"])
    """``file`` (the scenario in-process) and/or ``webrtc`` (through an aiortc client)."""


class ResultsWriter:
    """Appends JSON lines to ``results.jsonl`` and flushes each one at once."""

    def __init__(self, path: Path) -> None:
        """Open ``path`` for appending (the folder must exist)."""
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def children_cpu_s() -> float:
    """CPU seconds used so far by this process's descendants that are still running.

    Read from ``/proc`` (Linux); 0.0 elsewhere. Used for servers a pipeline starts.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    mine.discard(os.getpid())
    return sum(cpu.get(pid, 0.0) for pid in mine)


def _local_server(config: Any) -> bool:
    """True when the pipeline talks to a server it starts itself (no cloud bill)."""
    return getattr(config, "serve", None) is not None


def _prepared(config: Any) -> AbstractAsyncContextManager[Any]:
    """The lead's resource hook for a pipeline file, or the file as it is."""
    try:
        from pipelines.launch import prepared
    except ImportError:
        return nullcontext(config)
    return prepared(config)


class _Control:
    """Shared by the signal watcher and the runner."""

    def __init__(self) -> None:
        self.stop = False
        self.task: Any = None


async def _watch_signals(control: _Control, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _signum in signals:
            if control.stop:
                scope.cancel()
                return
            control.stop = True
            print("\nstopping: measuring what was played so far (Ctrl-C again to quit now)")
            if control.task is not None:
                await control.task.cancel(reason="bench interrupted")


async def _run_conversation(
    config: Any,
    conversation: CorpusConversation,
    plan: BenchPlan,
    control: _Control,
    on_item: Callable[[int, Any], None] | None,
    kind: str = "file",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from pipelines.factory import architecture_of, build_session
    from processors.recording.events import EventLog

    name = config.pipeline.name + ("" if kind == "file" else f"@{kind}")
    events_dir = plan.out_dir / "events" / name
    events_dir.mkdir(parents=True, exist_ok=True)
    events_path = events_dir / f"{conversation.name}.jsonl"
    live = kind != "file"
    params = plan.scenario.model_copy(update={"record": plan.save_audio and not live})
    transport = ScenarioTransport(conversation, params, on_item=on_item)
    with EventLog(path=events_path, llm_text=True) as log_:
        cpu0, child0, wall0 = time.process_time(), children_cpu_s(), time.monotonic()
        try:
            if live:
                from benchmarks.latency.webrtc import run_over_webrtc

                def watch(task: Any) -> None:
                    control.task = task

                records, client_task, session = await run_over_webrtc(
                    config, conversation, params, log_, on_item=on_item, on_task=watch
                )
                reason, task = client_task.end_reason, session.task
            else:
                session = build_session(config, transport, observers=[log_])
                control.task = task = session.task
                reason = await session.task.run()
                record_context(log_, session)
                records = list(log_.records)
        finally:
            control.task = None
        cpu_s = time.process_time() - cpu0
        child_s = max(0.0, children_cpu_s() - child0)
        wall_s = time.monotonic() - wall0
    if live:
        log_.records = records  # the merged records, both sides on one clock
        log_.write_jsonl(events_path)
    # what the stages can do says how a reply is made: one speech-to-speech stage or a chain
    architecture = architecture_of(session.stages.values())
    result = measure_conversation(records, architecture)
    interrupted = reason.value != "ended"
    turns = [t.as_dict() for t in result.turns]
    if interrupted and turns and not turns[-1]["replied"]:
        turns.pop()  # cut off before its reply could come: not a measurement
    summary = result.as_dict()
    if _local_server(config) and summary["cost_usd"]:
        # the processor prices usage by model name; a local server costs nothing
        summary["cost_usd_nominal"], summary["cost_usd"] = summary["cost_usd"], 0.0
    summary.update(
        pipeline=name,
        conversation=conversation.name,
        architecture=architecture,
        end=reason.value,
        process_cpu_s=round(cpu_s, 4),
        children_cpu_s=round(child_s, 4),
        wall_s=round(wall_s, 3),
        transport=kind,
        task_errors=[f"{e.processor}: {e.message}" for e in task.errors],
        events_file=str(events_path.relative_to(plan.out_dir)),
    )
    if plan.save_audio and not live:
        from framework.audio import write_wav

        audio_dir = plan.out_dir / "audio"
        audio_dir.mkdir(exist_ok=True)
        pcm, rate = transport.stereo_recording()
        wav = audio_dir / f"{name}-{conversation.name}.wav"
        await anyio.to_thread.run_sync(write_wav, wav, pcm, rate, 2)
        summary["audio_file"] = str(wav.relative_to(plan.out_dir))
    for turn in turns:
        turn["pipeline"] = name
    return turns, summary


async def _run_pipeline(
    path: Path,
    kind: str,
    plan: BenchPlan,
    writer: ResultsWriter,
    control: _Control,
    progress: Any,
) -> None:
    from benchmarks.latency.environment import file_sha256
    from pipelines.config import load_pipeline_file

    overrides = list(plan.overrides.get(path, []))
    if kind != "file":
        overrides.append(f'transport.backend="{kind}"')
    config = load_pipeline_file(path, overrides)
    name = config.pipeline.name + ("" if kind == "file" else f"@{kind}")
    writer.write(
        {
            "type": "pipeline",
            "pipeline": name,
            "transport": kind,
            "file": str(path),
            "sha256": file_sha256(path),
            "architecture": config.pipeline.architecture,
            "description": config.pipeline.description,
            "local_server": _local_server(config),
        }
    )
    async with _prepared(config) as ready:
        for conversation in plan.conversations:
            if control.stop:
                return
            on_item = progress.item_callback(name, conversation)
            turns, summary = await _run_conversation(
                ready, conversation, plan, control, on_item, kind
            )
            for turn in turns:
                writer.write({"type": "turn", **turn})
            writer.write({"type": "conversation", **summary})
            progress.conversation_done(name, conversation, turns, summary)


async def run_bench(plan: BenchPlan, progress: Any) -> bool:
    """Run the plan, appending to ``out_dir/results.jsonl``; False if it was interrupted."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    writer = ResultsWriter(plan.out_dir / "results.jsonl")
    control = _Control()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, control, tg.cancel_scope)
            for path, kind in [(p, k) for p in plan.pipelines for k in plan.transports]:
                if control.stop:
                    break
                try:
                    await _run_pipeline(path, kind, plan, writer, control, progress)
                except Exception as exc:  # one failing pipeline must not lose the others
                    log.exception("pipeline %s failed", path)
                    writer.write({"type": "failure", "file": str(path), "error": repr(exc)})
                    progress.failed(path, exc)
            tg.cancel_scope.cancel()
    finally:
        writer.close()
    return not control.stop


def remeasure(out_dir: Path) -> Path:
    """Measure a finished run again from its saved events (after a measurement change).

    Rewrites ``results.jsonl`` (the original is kept as ``results.jsonl.orig`` the
    first time): turns and conversation totals come from the events files, the
    figures only the runner knew (CPU time, wall time, errors) are kept.
    """
    from processors.recording.events import read_jsonl

    path = out_dir / "results.jsonl"
    backup = out_dir / "results.jsonl.orig"
    if not backup.exists():
        backup.write_bytes(path.read_bytes())
    records = [json.loads(line) for line in backup.read_text().splitlines() if line.strip()]
    architectures = {r["pipeline"]: r["architecture"] for r in records if r["type"] == "pipeline"}
    out: list[dict[str, Any]] = []
    for record in records:
        if record["type"] == "turn":
            continue
        if record["type"] == "conversation" and record.get("events_file"):
            architecture = record.get("architecture") or architectures[record["pipeline"]]
            result = measure_conversation(read_jsonl(out_dir / record["events_file"]), architecture)
            for turn in result.turns:
                out.append({"type": "turn", "pipeline": record["pipeline"], **turn.as_dict()})
            kept = {k: record[k] for k in record if k not in result.as_dict()}
            record = {**kept, **result.as_dict()}
            if record.get("cost_usd_nominal") is not None:
                record["cost_usd_nominal"], record["cost_usd"] = record["cost_usd"], 0.0
        out.append(record)
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in out), encoding="utf-8")
    return path
