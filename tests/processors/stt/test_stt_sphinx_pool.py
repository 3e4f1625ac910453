"""PocketSphinx stages share a pool of decoder processes, one decoder per turn (real model)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from processors.shared_models import MODELS
from processors.stt import PocketSphinxSTT
from processors.stt._sphinx_pool import DecoderPool
from processors.stt.base import TurnAudio

from .stt_helpers import Utterance, corpus_wer

pytestmark = [pytest.mark.anyio, pytest.mark.models]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _pool(stt: PocketSphinxSTT) -> DecoderPool:
    assert stt._pool is not None
    pool: DecoderPool = stt._pool.model
    return pool


def _ended_turn(pcm: bytes) -> TurnAudio:
    turn = TurnAudio(1, 0)
    turn._append(pcm, len(pcm) * 1_000_000_000 // 32000)
    turn._end(None)
    return turn


def test_stages_share_one_pool_and_idle_stages_hold_no_decoder() -> None:
    with MODELS.keep():
        stages = [PocketSphinxSTT() for _ in range(5)]
        for stage in stages:
            stage.load()
        pool = _pool(stages[0])
        assert all(_pool(s) is pool for s in stages)
        assert pool.idle == 1 and pool.lent == 0  # five idle stages, one decoder process
        assert {s.worker_pid for s in stages} == {pool.next_pid}  # the one next turns take
        for stage in stages:
            stage.release()
        assert pool.idle == 1  # kept: ready for the next session
    assert pool.idle == 0  # closed with the last keeper


async def test_concurrent_turns_get_their_own_decoders_and_words(
    speech: list[Utterance],
) -> None:
    stages = [PocketSphinxSTT(), PocketSphinxSTT()]
    for stage in stages:
        await anyio.to_thread.run_sync(stage.load)
    pool = _pool(stages[0])
    texts: list[str] = ["", ""]
    try:
        first, second = pool.take(), pool.take()  # two turns at once: two processes
        pids = {first.pid, second.pid}
        assert len(pids) == 2 and pool.lent == 2
        pool.put(first)
        pool.put(second)
        assert pool.idle == 2 and pool.lent == 0

        async def decode(index: int) -> None:
            texts[index] = await stages[index].decode_turn(_ended_turn(speech[index].pcm))

        async with anyio.create_task_group() as tg:
            tg.start_soon(decode, 0)
            tg.start_soon(decode, 1)
        assert pool.lent == 0 and pool.idle == 2  # both given back, none started anew
    finally:
        for stage in stages:
            stage.release()
    assert not any(_alive(pid) for pid in pids)  # not kept: stopped with the last stage
    assert pool.idle == 0
    # Each turn reads exactly as it does decoded alone on a fresh decoder.
    alone = []
    for index in range(2):
        stage = PocketSphinxSTT()
        await anyio.to_thread.run_sync(stage.load)
        try:
            alone.append(await stage.decode_turn(_ended_turn(speech[index].pcm)))
        finally:
            stage.release()
    assert texts == alone
    assert corpus_wer([speech[0].text, speech[1].text], texts) <= 0.6
