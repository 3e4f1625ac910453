"""The garbage collector setting of processes that run many sessions."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from framework.runtime import YOUNG_THRESHOLD, tune_gc
from pipelines.serve.options import parse_options


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_gc_raises_the_young_threshold_and_keeps_the_others() -> None:
    gc.set_threshold(700, 11, 12)
    assert tune_gc() == (700, 11, 12)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)
    assert tune_gc(2_000) == (YOUNG_THRESHOLD, 11, 12)
    assert gc.get_threshold() == (2_000, 11, 12)


def test_zero_keeps_the_thresholds_and_a_negative_one_is_refused() -> None:
    gc.set_threshold(700, 10, 10)
    assert tune_gc(0) == (700, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(ValueError, match="young threshold"):
        tune_gc(-1)


def test_the_server_option_defaults_to_the_tuned_threshold() -> None:
    assert parse_options([]).gc_threshold == YOUNG_THRESHOLD
    assert parse_options(["gc_threshold=0"]).gc_threshold == 0
    with pytest.raises(ValueError, match="gc_threshold"):
        parse_options(["gc_threshold=-5"])
