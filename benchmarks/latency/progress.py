"""Progress display of a running bench (rich progress bars, one per pipeline)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency.stats import percentile

__all__ = ["BenchProgress"]


class BenchProgress:
    """One bar per pipeline, advancing as each corpus item starts playing."""

    def __init__(self, console: Any, paths: Sequence[Path], conversations: Sequence[Any]) -> None:
        """Prepare the bars for ``paths`` x ``conversations``."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self._total = sum(len(c.items) for c in conversations)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._paths = list(paths)

    def __enter__(self) -> BenchProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def _task(self, pipeline: str) -> Any:
        if pipeline not in self._tasks:
            self._tasks[pipeline] = self._progress.add_task(f"{pipeline:<16}", total=self._total)
        return self._tasks[pipeline]

    def item_callback(self, pipeline: str, conversation: Any) -> Callable[[int, Any], None]:
        """The scenario's per-item hook for one conversation."""
        task = self._task(pipeline)

        def on_item(index: int, item: Any) -> None:
            label = f"{pipeline:<16} {conversation.name} {index + 1}/{len(conversation.items)}"
            self._progress.update(task, advance=1, description=label)

        return on_item

    def conversation_done(
        self, pipeline: str, conversation: Any, turns: list[dict[str, Any]], summary: dict[str, Any]
    ) -> None:
        """Print one line per finished conversation."""
        v2v = [t["v2v_s"] for t in turns if t.get("v2v_s") is not None and not t.get("early")]
        median = percentile(v2v, 50)
        text = "-" if median is None else f"{median * 1000:.0f} ms"
        errors = summary.get("task_errors") or []
        self._progress.console.print(
            f"  {pipeline} / {conversation.name}: {len(v2v)} replies, v2v p50 {text}, "
            f"{summary.get('end')}" + (f", {len(errors)} error(s)" if errors else ""),
            markup=False,
        )
        task = self._task(pipeline)
        self._progress.update(task, description=f"{pipeline:<16}")

    def failed(self, path: Path, exc: BaseException) -> None:
        """Report a pipeline that could not run."""
        self._progress.console.print(f"  {path}: failed: {exc!r}", markup=False)
