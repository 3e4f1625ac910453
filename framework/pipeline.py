"""Pipelines: processors in a chain, and chains side by side. Both are processors."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from framework.errors import CleanupError, LinkError
from framework.frames.base import Direction, Frame
from framework.frames.lifecycle import EndFrame, StartFrame
from framework.processor import Processor, ProcessorContext

__all__ = ["ParallelPipeline", "Pipeline"]

DOWNSTREAM = Direction.DOWNSTREAM
UPSTREAM = Direction.UPSTREAM


async def _cleanup_all(owner: str, stages: Sequence[Processor]) -> None:
    """Clean up every stage, even after one has failed; then raise what failed.

    A failure is raised as a :class:`CleanupError` naming its stage, several as an
    ``ExceptionGroup`` of them.
    """
    failures: list[Exception] = []
    for stage in stages:
        try:
            await stage.cleanup()
        except (CleanupError, ExceptionGroup) as exc:  # from a pipeline inside: named already
            failures.append(exc)
        except Exception as exc:
            failures.append(CleanupError(stage.name, exc))
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup(f"{owner}: cleanup failed in {len(failures)} stages", failures)


class _Container(Processor):
    """A processor made of other processors; frames leave it through its edges."""

    async def _exit(self, frame: Frame, direction: Direction) -> None:
        await self.push(frame, direction)


class _Edge(Processor):
    """The inside end of a container: what its first or last stage pushes out through."""

    def __init__(self, owner: _Container, direction: Direction, label: str) -> None:
        super().__init__(name=f"{owner.name}.{label}")
        self._owner = owner
        self._direction = direction

    async def receive(self, frame: Frame, direction: Direction) -> None:
        if direction is self._direction:
            await self._owner._exit(frame, direction)


class Pipeline(_Container):
    """Processors linked in order. Frames entering downstream go to the first one,
    frames entering upstream to the last one; what leaves either end continues
    beyond the pipeline. A pipeline can be a stage of another pipeline.
    """

    def __init__(self, processors: Sequence[Processor], *, name: str | None = None) -> None:
        super().__init__(name=name)
        stages = list(processors)
        if not stages:
            raise ValueError(f"{self.name}: a pipeline needs at least one processor")
        seen: set[int] = set()
        for stage in stages:
            if not isinstance(stage, Processor):
                raise TypeError(
                    f"{self.name}: pipeline stages must be Processor instances, "
                    f"got {type(stage).__name__}"
                )
            if id(stage) in seen:
                raise LinkError(
                    f"{stage.name} appears twice in {self.name}; "
                    "a processor can sit in one place only, create a new instance"
                )
            seen.add(id(stage))
        for stage in stages:
            stage._adopt(self)
        for upstream, downstream in itertools.pairwise(stages):
            upstream.link(downstream)
        self._stages = stages
        self._head = stages[0]
        self._tail = stages[-1]
        self._head._prev = _Edge(self, UPSTREAM, "head")
        self._tail._next = _Edge(self, DOWNSTREAM, "tail")

    @property
    def processors(self) -> list[Processor]:
        """The stages, in order."""
        return list(self._stages)

    def walk(self) -> list[Processor]:
        found: list[Processor] = [self]
        for stage in self._stages:
            found.extend(stage.walk())
        return found

    async def setup(self, context: ProcessorContext) -> None:
        await super().setup(context)
        for stage in self._stages:
            await stage.setup(context)

    async def cleanup(self) -> None:
        await _cleanup_all(self.name, self._stages)

    async def _dispatch(self, frame: Frame, direction: Direction) -> None:
        # A container has no work of its own: hand the frame to the right end.
        if direction is DOWNSTREAM:
            await self._head.receive(frame, direction)
        else:
            await self._tail.receive(frame, direction)


# Lifecycle frames leave a parallel pipeline once every branch has passed them
# (so End means every branch drained); other frames that entered from outside
# leave once, the first time a branch lets them through.
_SYNC_FRAMES = (StartFrame, EndFrame)
_RECENT_LIMIT = 4096


class ParallelPipeline(_Container):
    """Branches that all receive every frame; their outputs merge into one stream.

    Each branch is a list of processors (or a Pipeline). Frames the branches create
    pass straight out. A frame that entered from outside and passes through
    several branches leaves once; Start and End leave only after every branch has
    passed them.
    """

    def __init__(
        self, branches: Iterable[Sequence[Processor] | Pipeline], *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self._branches: list[Pipeline] = []
        for index, branch in enumerate(branches):
            pipeline = (
                branch
                if isinstance(branch, Pipeline)
                else Pipeline(list(branch), name=f"{self.name}.branch{index}")
            )
            pipeline._adopt(self)
            pipeline._next = _Edge(self, DOWNSTREAM, f"branch{index}.out")
            pipeline._prev = _Edge(self, UPSTREAM, f"branch{index}.in")
            self._branches.append(pipeline)
        if not self._branches:
            raise ValueError(f"{self.name}: a parallel pipeline needs at least one branch")
        self._pending: dict[int, int] = {}
        self._recent: OrderedDict[int, bool] = OrderedDict()  # frame id -> already left

    def walk(self) -> list[Processor]:
        found: list[Processor] = [self]
        for branch in self._branches:
            found.extend(branch.walk())
        return found

    async def setup(self, context: ProcessorContext) -> None:
        await super().setup(context)
        for branch in self._branches:
            await branch.setup(context)

    async def cleanup(self) -> None:
        await _cleanup_all(self.name, self._branches)

    async def _dispatch(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, _SYNC_FRAMES):
            self._pending[frame.id] = len(self._branches)
        else:
            self._remember(frame.id)
        for branch in self._branches:
            await branch.receive(frame, direction)

    def _remember(self, frame_id: int) -> None:
        recent = self._recent
        recent[frame_id] = False
        if len(recent) > _RECENT_LIMIT:
            recent.popitem(last=False)

    async def _exit(self, frame: Frame, direction: Direction) -> None:
        frame_id = frame.id
        pending = self._pending.get(frame_id)
        if pending is not None:
            if pending > 1:
                self._pending[frame_id] = pending - 1
                return
            del self._pending[frame_id]
        elif frame_id in self._recent:
            if self._recent[frame_id]:
                return
            self._recent[frame_id] = True
        await self.push(frame, direction)
