"""Parley's engine: frames, processors, pipelines, tasks and observers.

Nothing here knows a backend, and importing it is cheap (no numpy, no pydantic).
Audio utilities live in :mod:`framework.audio`.
"""

from framework.capabilities import Capabilities
from framework.errors import LinkError, ParleyError, TaskFinishedError
from framework.filters import FilterProcessor, FunctionProcessor
from framework.frames.base import Direction, Frame, FrameKind
from framework.observer import Observer
from framework.pipeline import ParallelPipeline, Pipeline
from framework.processor import Processor, ProcessorContext, handles
from framework.runner import PipelineRunner, run
from framework.task import EndReason, PipelineTask, TaskParams

__all__ = [
    "Capabilities",
    "Direction",
    "EndReason",
    "FilterProcessor",
    "Frame",
    "FrameKind",
    "FunctionProcessor",
    "LinkError",
    "Observer",
    "ParallelPipeline",
    "ParleyError",
    "Pipeline",
    "PipelineRunner",
    "PipelineTask",
    "Processor",
    "ProcessorContext",
    "TaskFinishedError",
    "TaskParams",
    "handles",
    "run",
]
