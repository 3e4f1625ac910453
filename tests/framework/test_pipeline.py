"""Pipelines nest, parallel branches merge, and a processor sits in one place only."""

from __future__ import annotations

import anyio
import pytest

from framework import (
    Direction,
    FilterProcessor,
    FunctionProcessor,
    LinkError,
    ParallelPipeline,
    Pipeline,
    PipelineTask,
    Processor,
)
from framework.frames import EndFrame, StartFrame, TextFrame

from .helpers import Data, Injector, Ping, Recorder, Slow, wait_until

pytestmark = pytest.mark.anyio


async def test_pipelines_nest_both_ways() -> None:
    head, tail = Recorder("head"), Injector(name="tail")
    inner = Pipeline([Processor(), Pipeline([Slow(0), Processor()]), Processor(queued=True)])
    sink = Recorder("sink")
    task = PipelineTask(Pipeline([head, inner, tail, sink]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(task.run)
        await task.queue_frames([Data(seq=i) for i in range(5)])
        await wait_until(lambda: len(sink.seqs()) == 5)
        await tail.inject(Data(seq=42), Direction.UPSTREAM)
        await wait_until(lambda: head.seqs(Direction.UPSTREAM) == [42])
        await task.stop_when_done()
    assert sink.seqs() == [0, 1, 2, 3, 4]


def test_a_processor_cannot_sit_in_two_places() -> None:
    p = Processor(name="p")
    with pytest.raises(LinkError, match="appears twice"):
        Pipeline([p, Processor(), p])
    Pipeline([p])
    with pytest.raises(LinkError, match="already belongs to"):
        Pipeline([p])
    a, b = Processor(name="a"), Processor(name="b")
    a.link(b)
    with pytest.raises(LinkError, match="a is already linked to b"):
        a.link(Processor())
    with pytest.raises(LinkError, match="itself"):
        b.link(b)


def test_a_pipeline_needs_processors() -> None:
    with pytest.raises(ValueError, match="at least one processor"):
        Pipeline([])
    with pytest.raises(TypeError, match="must be Processor instances, got str"):
        Pipeline(["stt"])  # type: ignore[list-item]


async def test_parallel_branches_merge_and_outside_frames_leave_once() -> None:
    class Tag(Processor):
        def __init__(self, tag: str) -> None:
            super().__init__()
            self.tag = tag

        async def process_frame(self, frame, direction) -> None:
            await self.push(frame, direction)
            if isinstance(frame, Data):
                await self.push(TextFrame(text=f"{self.tag}{frame.seq}"), direction)

    sink = Recorder()
    parallel = ParallelPipeline([[Tag("a")], [Slow(0.01), Tag("b")]])
    task = PipelineTask(Pipeline([parallel, sink]))
    await task.queue_frames([Data(seq=1), Ping(seq=2)])
    await task.stop_when_done()
    await task.run()
    # The system frame may overtake the data frame; each leaves exactly once.
    assert sorted(sink.seqs()) == [1, 2]
    assert sorted(f.text for f in sink.frames(kind=TextFrame)) == ["a1", "b1"]
    assert len(sink.frames(kind=StartFrame)) == 1
    assert len(sink.frames(kind=EndFrame)) == 1
    # End left only after the slow branch drained: b1 is before End.
    kinds = [type(f).__name__ for f, _ in sink.seen]
    assert kinds.index("EndFrame") > max(
        i for i, f in enumerate(sink.seen) if isinstance(f[0], TextFrame)
    )


async def test_filter_and_function_processors() -> None:
    sink = Recorder()
    pipeline = Pipeline(
        [
            FilterProcessor(lambda f: not isinstance(f, Data) or f.seq % 2 == 0),
            FunctionProcessor(lambda f: Data(seq=f.seq * 10), types=(Data,)),
            FunctionProcessor(lambda f: None, types=(TextFrame,)),
            sink,
        ]
    )
    task = PipelineTask(pipeline)
    await task.queue_frames([Data(seq=i) for i in range(5)] + [TextFrame(text="x"), Ping(seq=9)])
    await task.stop_when_done()
    await task.run()
    assert [f.seq for f in sink.frames(kind=Data)] == [0, 20, 40]
    assert [f.seq for f in sink.frames(kind=Ping)] == [9]
    assert sink.frames(kind=TextFrame) == []
