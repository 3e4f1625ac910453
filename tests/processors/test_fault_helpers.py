"""The leak checks of the fault tests catch what they are meant to catch."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import anyio
import pytest

from tests.processors.fault_helpers import Snapshot, alive, assert_nothing_left, run_clean


def test_a_thread_still_running_is_named_with_its_stack() -> None:
    before = Snapshot.take()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="stuck-decoder")
    thread.start()
    try:
        with pytest.raises(AssertionError, match="stuck-decoder"):
            assert_nothing_left(before, within_s=0.2)
    finally:
        stop.set()
        thread.join()
    assert_nothing_left(before, within_s=5)


def test_a_child_process_still_running_is_caught() -> None:
    before = Snapshot.take()
    child = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(AssertionError, match=str(child.pid)):
            assert_nothing_left(before, within_s=0.2)
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)
    assert_nothing_left(before, within_s=5)


def test_a_task_left_behind_is_caught() -> None:
    async def scenario() -> None:
        asyncio.get_running_loop().create_task(anyio.sleep(30))

    with pytest.raises(AssertionError, match="tasks left running"):
        run_clean(scenario)
