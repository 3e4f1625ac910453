"""Recording what happens in a conversation: the event log observer."""

from processors.recording.events import EventLog, read_jsonl

__all__ = ["EventLog", "read_jsonl"]
