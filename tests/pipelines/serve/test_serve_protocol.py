"""The server's protocol layer without a server: validation, merging, items, event sequences."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.serve.items import Conversation, Item, Part, item_from_client, truncate
from pipelines.serve.protocol import ProtocolError, parse_client_event
from pipelines.serve.responses import Response, ResponseSettings
from pipelines.serve.session_config import default_session, merge_session
from tests.pipelines.serve.helpers import check_event

# ------------------------------------------------------------------- client events


def _error(raw: str | bytes, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_event(raw, **kw)
    return info.value


def test_parse_valid_events() -> None:
    ev = parse_client_event(
        '{"type": "input_audio_buffer.append", "audio": "AAA=", "event_id": "e1"}'
    )
    assert ev.type == "input_audio_buffer.append" and ev.event_id == "e1"
    ev = parse_client_event(b'{"type": "response.cancel"}')
    assert ev.response_id is None


def test_malformed_json_is_an_invalid_request() -> None:
    err = _error("{not json")
    assert (err.type, err.code) == ("invalid_request_error", "invalid_json")
    assert _error("[1, 2]").code == "invalid_json"


def test_unknown_event_type_names_the_param_and_echoes_event_id() -> None:
    err = _error('{"type": "response.explode", "event_id": "evt_9"}')
    assert (err.code, err.param, err.event_id) == ("invalid_value", "type", "evt_9")
    assert "response.create" in err.message


def test_missing_unknown_and_mistyped_fields() -> None:
    err = _error('{"type": "conversation.item.truncate", "item_id": "x", "content_index": 0}')
    assert (err.code, err.param) == ("missing_required_parameter", "audio_end_ms")
    err = _error('{"type": "input_audio_buffer.commit", "bogus": 1}')
    assert (err.code, err.param) == ("unknown_parameter", "bogus")
    err = _error(
        '{"type": "conversation.item.truncate", "item_id": "x", "content_index": 0,'
        ' "audio_end_ms": "12"}'
    )
    assert (err.code, err.param) == ("invalid_type", "audio_end_ms")


def test_oversized_message_is_refused_with_its_event_id() -> None:
    raw = json.dumps({"event_id": "big1", "type": "input_audio_buffer.append", "audio": "A" * 5000})
    err = _error(raw, max_bytes=1000)
    assert (err.code, err.event_id) == ("message_too_large", "big1")


# --------------------------------------------------------------------- session.update


def test_default_session_is_a_full_ga_session() -> None:
    wire = default_session("gpt-realtime").to_wire()
    assert wire["type"] == "realtime" and wire["object"] == "realtime.session"
    assert wire["id"].startswith("sess_")
    assert wire["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert wire["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert wire["audio"]["output"]["voice"] == "marin"
    check_event({"type": "session.created", "event_id": "e", "session": wire})


def test_update_merges_only_present_fields() -> None:
    current = default_session("gpt-realtime")
    new = merge_session(
        current,
        {
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}
            },
        },
    )
    assert new.instructions == "Be brief."
    assert new.audio.input.turn_detection.silence_duration_ms == 200
    assert new.audio.input.turn_detection.prefix_padding_ms == 300  # kept
    assert new.audio.output.voice == "marin"
    assert new.id == current.id
    off = merge_session(new, {"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    assert off.audio.input.turn_detection is None
    semantic = merge_session(
        new,
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}},
        },
    )
    assert semantic.audio.input.turn_detection.type == "semantic_vad"


@pytest.mark.parametrize(
    ("update", "code", "param"),
    [
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        ({"type": "realtime", "voicee": "x"}, "unknown_parameter", "session.voicee"),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}},
            },
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"type": "realtime", "output_modalities": ["text", "audio"]},
            "invalid_value",
            "session.output_modalities",
        ),
        ({"type": "realtime", "model": "gpt-other"}, "invalid_value", "session.model"),
        (
            {"type": "realtime", "tools": [{"type": "function"}]},
            "missing_required_parameter",
            "session.tools[0].name",
        ),
    ],
)
def test_bad_updates_name_the_parameter(update: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(ProtocolError) as info:
        merge_session(default_session("gpt-realtime"), update, event_id="u1")
    assert (info.value.code, info.value.param, info.value.event_id) == (code, param, "u1")


# ------------------------------------------------------------------------------ items


def test_client_items_and_their_wire_form() -> None:
    conv = Conversation()
    user = item_from_client(
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        "audio/pcm",
    )
    out = item_from_client(
        {"type": "function_call_output", "call_id": "c1", "output": "{}"}, "audio/pcm"
    )
    assert conv.add(user) is None
    assert conv.add(out) == user.id
    first = item_from_client(
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "S"}]},
        "audio/pcm",
    )
    assert conv.add(first, "root") is None
    assert [i.id for i in conv] == [first.id, user.id, out.id]
    for item in conv:
        check_event({"type": "conversation.item.added", "event_id": "e", "item": item.wire()})
    assert out.chat_message() == {"role": "tool", "tool_call_id": "c1", "content": "{}"}
    with pytest.raises(ProtocolError) as info:
        item_from_client(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_audio", "audio": ""}],
            },
            "audio/pcm",
        )
    assert info.value.code == "unsupported_content_type"
    with pytest.raises(ProtocolError) as info:
        item_from_client({"type": "message", "role": "user", "content": []}, "audio/pcm")
    assert info.value.param == "item.content"


def _assistant_audio(ms: int) -> Item:
    part = Part(
        type="output_audio",
        transcript="One two three four. Five six.",
        audio=bytearray(48 * ms),
        audio_format="audio/pcm",
        pieces=[("One two three four.", 0.0, 600.0), (" Five six.", 600.0, float(ms))],
    )
    return Item(id="item_a", type="message", role="assistant", content=[part])


def test_truncate_cuts_audio_and_keeps_the_heard_words() -> None:
    item = _assistant_audio(1000)
    truncate(item, 0, 300)
    part = item.content[0]
    assert part.duration_ms == 300
    assert part.transcript == "One two"


@pytest.mark.parametrize("end_ms", [0, 1200])
def test_truncate_out_of_range_is_refused(end_ms: int) -> None:
    item = _assistant_audio(1000)
    with pytest.raises(ProtocolError) as info:
        truncate(item, 0, end_ms)
    assert info.value.param == "audio_end_ms"
    assert item.content[0].duration_ms == 1000


def test_truncate_only_assistant_audio() -> None:
    user = Item(id="u", type="message", role="user", content=[Part(type="input_text", text="x")])
    with pytest.raises(ProtocolError) as info:
        truncate(user, 0, 10)
    assert info.value.code == "unsupported_content_type"


# -------------------------------------------------------------------------- responses


def _response(modalities: list[str], fmt: str = "audio/pcm") -> tuple[Response, list[dict]]:
    sent: list[dict[str, Any]] = []
    settings = ResponseSettings(modalities=modalities, audio_format={"type": fmt}, voice="marin")
    return Response(
        settings, send=sent.append, conversation=Conversation(), input_usage=(10, 20), delta_ms=100
    ), sent


def test_audio_response_sequence_and_usage() -> None:
    response, sent = _response(["audio"])
    response.start()
    response.transcript("Hello there.")
    response.audio(bytes(48 * 250), 24000)  # 250 ms at 24 kHz
    response.transcript("Bye.")
    response.audio(bytes(48 * 50), 24000)
    response.finish("completed")
    for ev in sent:
        check_event(ev)
    kinds = [e["type"] for e in sent if not e["type"].endswith(".delta")]
    assert kinds == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    audio = [e for e in sent if e["type"] == "response.output_audio.delta"]
    assert len(audio) == 4  # 100 + 100 + 50 (flushed before the next piece) + 50
    done = sent[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == "Hello there. Bye."
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 6  # 300 ms / 50 ms
    assert usage["input_tokens"] == 30
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_text_response_and_function_call() -> None:
    response, sent = _response(["text"])
    response.start()
    response.text("Let me check.")
    response.function_call("call_1", "get_weather", '{"city":"Paris"}')
    response.finish("completed")
    for ev in sent:
        check_event(ev)
    done = sent[-1]["response"]
    assert [i["type"] for i in done["output"]] == ["message", "function_call"]
    assert done["output"][1]["arguments"] == '{"city":"Paris"}'
    names = [e["type"] for e in sent]
    assert names.index("response.output_text.done") < names.index(
        "response.function_call_arguments.done"
    )


def test_cancelled_g711_response_reports_the_reason() -> None:
    response, sent = _response(["audio"], "audio/pcmu")
    response.start()
    response.transcript("Hi.")
    response.audio(bytes(48 * 100), 24000)
    response.finish("cancelled", "turn_detected")
    for ev in sent:
        check_event(ev)
    done = sent[-1]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    part_audio = response.output[0].content[0]
    assert 95 <= part_audio.duration_ms <= 100  # 8 kHz mu-law, resampled
