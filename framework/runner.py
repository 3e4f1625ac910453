"""Running tasks from a program: signal handling and a one-call entry point."""

from __future__ import annotations

import logging
import signal
import threading

import anyio

from framework.task import EndReason, PipelineTask

__all__ = ["PipelineRunner", "run"]

log = logging.getLogger("parley")


class PipelineRunner:
    """Runs a task and cancels it cleanly on SIGINT or SIGTERM.

    The first signal cancels the task (its processors clean up); a second one
    stops waiting for the cleanup. :attr:`signal` tells which signal stopped the
    task, if one did (a command line exits with ``128 + signal`` then).
    """

    def __init__(self, *, handle_signals: bool = True) -> None:
        self.handle_signals = handle_signals
        self.signal: signal.Signals | None = None

    async def run(self, task: PipelineTask) -> EndReason:
        """Run ``task`` to completion and return why it stopped."""
        watch = self.handle_signals and threading.current_thread() is threading.main_thread()
        reason = EndReason.CANCELLED  # if a second signal stops the wait for the task
        async with anyio.create_task_group() as tg:
            if watch:
                tg.start_soon(self._watch_signals, task, tg.cancel_scope)
            reason = await task.run()
            tg.cancel_scope.cancel()
        return task.end_reason or reason

    async def _watch_signals(self, task: PipelineTask, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            count = 0
            async for signum in signals:
                count += 1
                name = signal.Signals(signum).name
                if count == 1:
                    self.signal = signal.Signals(signum)
                    log.info("%s received: cancelling %s", name, task.name)
                    await task.cancel(reason=name)
                else:
                    log.warning("%s received again: not waiting for cleanup", name)
                    scope.cancel()
                    return


def run(task: PipelineTask, *, handle_signals: bool = True) -> EndReason:
    """Run ``task`` in a new event loop (blocking) and return why it stopped."""
    runner = PipelineRunner(handle_signals=handle_signals)
    return anyio.run(runner.run, task)
