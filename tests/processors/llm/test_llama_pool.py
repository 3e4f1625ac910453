"""The pool of llama.cpp contexts: lending, affinity to an owner, growth on overlap, giving up."""

from __future__ import annotations

import threading
import time

import pytest

from processors.llm._llama_pool import LlamaPool


class _Context:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False


class _Loader:
    def __init__(self, fail_at: int | None = None) -> None:
        self.made: list[_Context] = []
        self.fail_at = fail_at

    def __call__(self) -> _Context:
        if self.fail_at is not None and len(self.made) == self.fail_at:
            self.fail_at = None
            raise RuntimeError("load failed (test)")
        context = _Context(len(self.made))
        self.made.append(context)
        return context


def test_one_context_at_first_and_reused_when_turns_do_not_overlap() -> None:
    loader = _Loader()
    pool = LlamaPool(loader, size=2)
    assert len(loader.made) == 1 and pool.first is loader.made[0]
    for _ in range(3):
        context = pool.take()
        assert context is pool.first
        pool.give(context)
    assert len(pool.instances) == 1  # no overlap: no second context


def test_overlapping_replies_get_a_second_context_then_wait() -> None:
    loader = _Loader()
    pool = LlamaPool(loader, size=2)
    a = pool.take()
    b = pool.take()  # the first is busy: a second is loaded
    assert a is not b and len(pool.instances) == 2 and pool.busy == 2
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(pool.take()))
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive() and len(pool.instances) == 2  # full: waits, loads no third
    pool.give(b)
    thread.join(10)
    assert got == [b]


def test_prefers_the_context_its_owner_gave_back_else_the_one_idle_longest() -> None:
    pool = LlamaPool(_Loader(), size=3)
    a, b, c = pool.take(), pool.take(), pool.take()
    mine, other = object(), object()
    pool.give(b)
    pool.give(a, owner=other)
    pool.give(c, owner=mine)
    assert pool.take(owner=mine) is c
    assert pool.take(owner=object()) is b  # a stranger: the one given back first
    assert pool.take(owner=mine) is a
    # Both used by the same owner: the one it gave back last holds its latest prompt.
    pool.give(a, owner=mine)
    pool.give(c, owner=mine)
    assert pool.take(owner=mine) is c


def test_lent_to_and_full_tell_who_holds_what() -> None:
    pool = LlamaPool(_Loader(), size=2)
    reply, check = object(), object()
    a = pool.take(owner=reply)
    assert pool.lent_to(reply) and not pool.lent_to(check) and not pool.full()
    b = pool.take(owner=check)  # loaded: the first is lent out
    assert pool.full()
    assert pool.take(owner=check, wait=False) is None  # nothing free: no wait, no load
    pool.give(a, owner=reply)
    assert not pool.lent_to(reply) and not pool.full()
    assert pool.take(owner=check, wait=False) is a
    pool.give(b, owner=check)


def test_room_counts_free_contexts_and_those_not_loaded_yet() -> None:
    pool = LlamaPool(_Loader(), size=2)
    assert pool.room() == 2  # one loaded and free, one place to load
    a = pool.take()
    assert pool.room() == 1
    b = pool.take()  # the second is loaded now
    assert pool.room() == 0
    pool.give(a)
    assert pool.room() == 1
    pool.give(b)
    assert pool.room() == 2


def test_take_gives_up_once_stopped() -> None:
    pool = LlamaPool(_Loader(), size=1)
    held = pool.take()
    stop = threading.Event()
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(pool.take(stop)))
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()
    stop.set()
    thread.join(10)
    assert got == [None]
    pool.give(held)
    assert pool.take(threading.Event()) is held


def test_a_failed_load_frees_its_place() -> None:
    loader = _Loader(fail_at=1)
    pool = LlamaPool(loader, size=2)
    first = pool.take()
    with pytest.raises(RuntimeError, match="load failed"):
        pool.take()
    second = pool.take()  # the place is free again: loaded now
    assert second is not first and len(pool.instances) == 2


def test_close_closes_every_context_and_bad_size_is_refused() -> None:
    pool = LlamaPool(_Loader(), size=2)
    a = pool.take()
    pool.take()
    pool.give(a)
    closed: list[_Context] = []
    pool.close(closed.append)
    assert sorted(c.number for c in closed) == [0, 1] and pool.instances == []
    with pytest.raises(ValueError, match="at least one context"):
        LlamaPool(_Loader(), size=0)


def test_fill_loads_up_to_size_once() -> None:
    loader = _Loader()
    pool = LlamaPool(loader, size=3)
    held = pool.take()
    assert pool.fill() == 2 and len(loader.made) == 3
    assert pool.fill() == 0  # full already
    assert pool.take(wait=False) is not None and pool.take(wait=False) is not None
    pool.give(held)


def test_a_failed_load_in_fill_leaves_the_place_free() -> None:
    loader = _Loader(fail_at=1)
    pool = LlamaPool(loader, size=2)
    with pytest.raises(RuntimeError, match="load failed"):
        pool.fill()
    assert pool.fill() == 1 and len(pool.instances) == 2
