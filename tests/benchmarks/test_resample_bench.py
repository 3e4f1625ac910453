"""The resampler benchmark: its measurements on a small scale."""

from __future__ import annotations

import pytest

from benchmarks.resample import cost_us, held_back_ms, main


@pytest.mark.parametrize(("from_rate", "to_rate"), [(16000, 24000), (24000, 16000)])
def test_the_low_delay_resampler_holds_back_less_than_soxr(from_rate: int, to_rate: int) -> None:
    low_mean, low_worst = held_back_ms("LD", from_rate, to_rate)
    lq_mean, lq_worst = held_back_ms("LQ", from_rate, to_rate)
    assert 0.0 < low_mean <= low_worst < 2.0
    assert low_mean < lq_mean and low_worst < lq_worst
    assert cost_us("LD", from_rate, to_rate, chunks=20) > 0.0


def test_the_tables_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-wer"]) == 0
    out = capsys.readouterr().out
    assert "| LD |" in out and "| HQ |" in out and "held back" in out
