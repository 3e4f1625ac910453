"""Transports: where audio enters and leaves a pipeline."""

from processors.transports.base import (
    InputTransport,
    InputTransportParams,
    LiveInputTransport,
    LiveInputTransportParams,
    OutputTransport,
    OutputTransportParams,
)
from processors.transports.file import (
    FileInputTransport,
    FileOutputTransport,
    FileTransport,
    FileTransportParams,
)

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
