"""Transports: where audio enters and leaves a pipeline."""

from processors.transports.base import (
    InputTransport,
    InputTransportParams,
    LiveInputTransport,
    LiveInputTransportParams,
    OutputTransportParams,
)
from processors.transports.file import (
    FileInputTransport,
    FileOutputTransport,
    FileTransport,
    FileTransportParams,
)
from processors.transports.output import OutputTransport

__all__ = [
    "FileInputTransport",
    "FileOutputTransport",
    "FileTransport",
    "FileTransportParams",
    "InputTransport",
    "InputTransportParams",
    "LiveInputTransport",
    "LiveInputTransportParams",
    "OutputTransport",
    "OutputTransportParams",
]
