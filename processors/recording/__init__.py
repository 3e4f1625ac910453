"""Recording what happens in a conversation: the event log observer."""

from processors.recording.events import EventLog, EventSink, read_jsonl, report_event

__all__ = ["EventLog", "EventSink", "read_jsonl", "report_event"]
