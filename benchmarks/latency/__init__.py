"""``parley bench``: the voice-to-voice latency benchmark, cascade against speech-to-speech.

The same spoken conversation is played, in real time, into several pipeline files;
every turn is measured on the task's monotonic clock from the *true* end of the
user's speech (known to the sample from the corpus) to the first bot audio sample
leaving the output transport, and broken down by stage.

Modules:

* :mod:`.corpus` - conversations of user turns: the manifest format and its checks.
* :mod:`.script`, :mod:`.generate` - the built-in corpus, spoken by Piper, cached.
* :mod:`.scenario` - the transport that plays a conversation against the bot.
* :mod:`.webrtc` - the same, spoken by an aiortc client to a live WebRTC server.
* :mod:`.measure` - measurements as a pure function of the event records.
* :mod:`.wer`, :mod:`.stats` - word error rate; percentiles and summaries.
* :mod:`.runner` - runs pipelines x conversations, keeping results as measured.
* :mod:`.report`, :mod:`.plots`, :mod:`.compare` - JSON, tables, Markdown, PNGs.
* :mod:`.cli` - ``main(argv)`` behind ``parley bench``.
"""

from benchmarks.latency.cli import main

__all__ = ["main"]
