"""Property tests of the frame promises over random pipelines and frame sequences.

A random pipeline mixes inline, queued and slow stages, nested to random depth.
A random script pushes data, uninterruptible, control and system frames both
ways, with interruptions and pauses in between. Every event lands in one log,
so "before" and "after" are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import Direction, Frame, Pipeline, PipelineTask, Processor
from framework.frames import InterruptionFrame

from .helpers import Control, Data, Injector, Ping, Slow, Sticky

DOWN, UP = Direction.DOWNSTREAM, Direction.UPSTREAM

stage_leaf = st.sampled_from(["inline", "queued", "slow0", "slow1"])
stages = st.recursive(
    st.lists(stage_leaf, min_size=1, max_size=4),
    lambda inner: st.lists(st.one_of(stage_leaf, inner), min_size=1, max_size=4),
    max_leaves=12,
)
op = st.sampled_from(["data", "sticky", "control", "system", "interrupt", "pause"])
script = st.lists(st.tuples(op, st.sampled_from([DOWN, UP])), max_size=40)


def build(spec: list) -> list[Processor]:
    out: list[Processor] = []
    for item in spec:
        if isinstance(item, list):
            out.append(Pipeline(build(item)))
        elif item == "inline":
            out.append(Processor())
        elif item == "queued":
            out.append(Processor(queued=True))
        else:
            out.append(Slow(0 if item == "slow0" else 0.001))
    return out


@dataclass
class Event:
    what: str  # "push", "interrupt", "arrive"
    frame: Frame
    direction: Direction


class LogRecorder(Processor):
    def __init__(self, log: list[Event], direction: Direction) -> None:
        super().__init__()
        self.log = log
        self.direction = direction

    async def process_frame(self, frame: Frame, direction: Direction) -> None:
        if direction is self.direction:
            self.log.append(Event("arrive", frame, direction))
        await self.push(frame, direction)


async def play(spec: list, ops: list[tuple[str, Direction]]) -> list[Event]:
    log: list[Event] = []
    head, sink = LogRecorder(log, UP), LogRecorder(log, DOWN)
    tail = Injector()
    task = PipelineTask(Pipeline([head, *build(spec), tail, sink]))
    makers = {"data": Data, "sticky": Sticky, "control": Control, "system": Ping}
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        while not task.running:
            await anyio.lowlevel.checkpoint()
        for seq, (kind, direction) in enumerate(ops):
            if kind == "pause":
                await anyio.sleep(0.001)
                continue
            frame = InterruptionFrame() if kind == "interrupt" else makers[kind](seq=seq)
            log.append(Event("interrupt" if kind == "interrupt" else "push", frame, direction))
            if kind == "interrupt" or direction is DOWN:
                await task.queue_frame(frame)
            else:
                await tail.inject(frame, UP)
        # End drains only downstream. Upstream, an uninterruptible marker pushed
        # last arrives after every surviving upstream frame, since order holds.
        marker = Sticky(seq=len(ops))
        await tail.inject(marker, UP)
        with anyio.fail_after(10):
            while not any(e.frame is marker for e in log):
                await anyio.sleep(0.001)
        await task.stop_when_done()
    return log


def check(log: list[Event]) -> None:
    pushed = [e for e in log if e.what == "push"]
    arrived = {(id(e.frame), e.direction): i for i, e in enumerate(log) if e.what == "arrive"}
    interrupts = [i for i, e in enumerate(log) if e.what == "interrupt"]
    for direction in (DOWN, UP):
        # Order: data and control frames arrive in the order they were pushed.
        seqs = [
            e.frame.seq
            for e in log
            if e.what == "arrive"
            and e.direction is direction
            and not e.frame.is_system
            and hasattr(e.frame, "seq")
        ]
        assert seqs == sorted(seqs), f"out of order {direction.name}: {seqs}"
    for index, event in enumerate(log):
        if event.what != "push":
            continue
        key = (id(event.frame), event.direction)
        later = [i for i in interrupts if i > index]
        if not event.frame.droppable:
            # System and uninterruptible frames always arrive.
            assert key in arrived, f"{event.frame} was lost"
        elif not later:
            # After the last interruption, frames flow normally.
            assert key in arrived, f"{event.frame} pushed after every interruption was lost"
        elif key in arrived:
            # A droppable frame queued before an interruption never arrives after it.
            assert arrived[key] < later[0], f"{event.frame} arrived after an interruption"
    # Each interruption reaches the end of the pipeline exactly once.
    interruption_arrivals = [
        e for e in log if e.what == "arrive" and isinstance(e.frame, InterruptionFrame)
    ]
    assert len(interruption_arrivals) == len(interrupts)
    assert len(pushed) >= 0


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=stages, ops=script)
def test_frame_promises_hold_for_random_pipelines(spec: list, ops: list) -> None:
    check(anyio.run(play, spec, ops))


@settings(deadline=None)
@given(
    spec=stages,
    ops=st.lists(
        st.tuples(st.sampled_from(["data", "control", "system"]), st.just(DOWN)), max_size=30
    ),
)
def test_without_interruptions_every_frame_arrives_once(spec: list, ops: list) -> None:
    log = anyio.run(play, spec, ops)
    pushes = [e.frame.id for e in log if e.what == "push"]
    arrivals = [e.frame.id for e in log if e.what == "arrive" and e.frame.id in set(pushes)]
    assert sorted(arrivals) == sorted(pushes)
