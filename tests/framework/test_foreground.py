"""Foreground work and the background work that waits for it, across threads."""

from __future__ import annotations

import threading
import time

from framework.foreground import Foreground


def test_nothing_running_means_no_wait() -> None:
    fg = Foreground()
    assert not fg.active()
    assert fg.wait_clear(1.0) == 0.0


def test_background_waits_until_the_foreground_work_ends() -> None:
    fg = Foreground()
    entered, leave = threading.Event(), threading.Event()

    def work() -> None:
        with fg.running(), fg.running():  # nested: active until the outer one ends
            entered.set()
            leave.wait(5)

    worker = threading.Thread(target=work)
    worker.start()
    entered.wait(5)
    assert fg.active()
    threading.Timer(0.2, leave.set).start()
    waited = fg.wait_clear(5.0)
    worker.join(5)
    assert 0.1 < waited < 5.0
    assert not fg.active()
    assert fg.waited_s == waited


def test_the_wait_is_bounded_by_its_limit() -> None:
    fg = Foreground()
    with fg.running():
        began = time.perf_counter()
        waited = fg.wait_clear(0.05)
        assert waited >= 0.04 and time.perf_counter() - began < 2.0
        assert fg.active()
    assert not fg.active()
