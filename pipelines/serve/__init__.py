"""``parley serve``: an OpenAI-Realtime-compatible (GA) server over a Parley cascade.

:func:`serve` runs the WebSocket server (``/v1/realtime``) until cancelled,
:func:`serve_main` is the CLI's blocking entry point, and
:func:`~pipelines.serve.app.running_server` starts one in-process (tests, benchmarks).

What a session does (GA protocol, event names and required fields as in the
official SDK's ``openai.types.realtime`` models):

* ``session.created`` once the session's models are loaded (so it means
  "ready"), with a full GA session; ``session.update`` merges only the fields
  given and answers ``session.updated`` with the full configuration, or an
  ``error`` naming the parameter (nothing is applied then).
* Audio in: ``audio/pcm`` (24 kHz), ``audio/pcmu``, ``audio/pcma``; append,
  commit (at least 100 ms), clear. Turns by ``server_vad`` (the pipeline's VAD;
  ``threshold`` and ``silence_duration_ms`` apply, ``prefix_padding_ms`` moves
  ``audio_start_ms``), ``semantic_vad`` (the same VAD and the Smart Turn v3.2
  end-of-turn model at each pause; the eagerness sets how long a turn judged
  complete or incomplete waits, up to 2/4/8 s for high/medium/low:
  :mod:`pipelines.serve.turn_settings`) or manual (``turn_detection: null``).
  ``create_response``, ``interrupt_response`` and ``idle_timeout_ms`` are honoured.
* Speculation: at a pause inside a VAD turn the reply is transcribed, generated
  and synthesised, and held; when the turn ends it goes out right after the
  commit, and if the user goes on it is withdrawn unseen
  (:mod:`pipelines.serve.speculation`; server option ``speculate``).
* Responses: STT transcript -> LLM -> TTS, streamed as ``response.output_audio.delta``
  (as fast as synthesised) and ``response.output_audio_transcript.delta`` per
  spoken piece, or ``response.output_text.delta`` for ``["text"]``; one active
  response at a time; ``response.cancel``; barge-in cancels with ``turn_detected``;
  function calls (a ``FunctionCallFrame`` from the LLM stage) become
  ``function_call`` items; ``usage`` by the 100 ms / 50 ms audio-token rules
  and ~4 characters per text token.
* Conversation items: create (user text/audio, system, assistant text,
  function_call, function_call_output), delete, retrieve (with audio),
  truncate (assistant audio; keeps the words heard), out-of-band responses
  (``conversation: "none"``, ``input``).

Known differences from OpenAI: one voice (the TTS's; ``voice`` and ``speed``
are reported, not applied, though a voice must be one of OpenAI's names or a
custom ``{"id": ...}``, else ``invalid_value`` lists the names); no noise
reduction (the setting is reported); ``input_image`` is refused; a
client-created ``input_audio`` part is heard only through its ``transcript``;
transcription sessions and MCP tools are not supported; a beta-shaped
connection is refused as OpenAI does now.
"""

from pipelines.serve.app import serve, serve_main, serve_pipeline_file
from pipelines.serve.options import ServerOptions, parse_options

__all__ = ["ServerOptions", "parse_options", "serve", "serve_main", "serve_pipeline_file"]
