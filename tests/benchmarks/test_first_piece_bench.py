"""The first-piece benchmark: its table on a small scale (no timing asserted)."""

from __future__ import annotations

import pytest

from benchmarks.first_piece import PIECES, main, synthesis_ms
from framework.foreground import FOREGROUND

pytestmark = pytest.mark.models


def test_a_synthesis_next_to_the_model_is_timed_and_leaves_nothing_running() -> None:
    ms = synthesis_ms(2, foreground=True, model_busy=True, repeats=1)
    assert len(ms) == len(PIECES) and all(m > 0 for m in ms)
    assert not FOREGROUND.active()


def test_the_table_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| 1 |") == 3 and out.count("\n| 2 |") == 3
    assert "waits (foreground)" in out
