"""The realtime book-keeping on its own: played audio, response races, replayable history."""

from __future__ import annotations

from processors.realtime._state import History, Playback, Responses, heard_prefix


def test_truncation_is_at_the_played_position_of_the_interrupted_item() -> None:
    p = Playback()
    a = p.received("a", "r1", 1, 1000)
    p.pushed(a, 1000)
    cut = p.interrupted(0.4, "r1")
    assert cut is not None and (cut.item_id, cut.audio_end_ms) == ("a", 400)
    assert abs(cut.heard_fraction - 0.4) < 1e-9
    assert p.pending_ms == 0  # the transport dropped the rest


def test_played_time_accumulates_over_stretches_and_items() -> None:
    p = Playback()
    a = p.received("a", "r1", 1, 500)
    p.pushed(a, 500)
    p.played_all()  # the queue ran dry once
    p.received("a", "r1", 1, 500)
    p.pushed(a, 500)
    cut = p.interrupted(0.2, "r1")
    assert cut is not None and cut.audio_end_ms == 700

    q = Playback()
    first = q.received("x", "r1", 1, 300)
    q.pushed(first, 300)
    q.audio_done("x")
    second = q.received("y", "r2", 1, 800)
    q.pushed(second, 800)
    cut = q.interrupted(0.5, "r2")  # 300 ms of x, then 200 ms of y
    assert cut is not None and (cut.item_id, cut.audio_end_ms) == ("y", 200)


def test_nothing_to_cut_when_nothing_or_everything_was_heard() -> None:
    p = Playback()
    a = p.received("a", "r1", 1, 1000)
    p.pushed(a, 1000)
    assert p.interrupted(0.0, "r1") is None  # not a millisecond heard: skip (server refuses 0)

    done = Playback()
    b = done.received("b", "r1", 1, 600)
    done.pushed(b, 600)
    done.audio_done("b")
    done.played_all()
    assert done.interrupted(0.0, None) is None  # heard in full and complete

    clamp = Playback()
    c = clamp.received("c", "r1", 1, 300)
    clamp.pushed(c, 300)
    cut = clamp.interrupted(5.0, "r1")  # the transport padded its last chunk: clamp
    assert cut is not None and cut.audio_end_ms == 300  # response still running: cut anyway


def test_an_item_still_streaming_is_cut_at_what_played_after_a_dry_stretch() -> None:
    p = Playback()
    a = p.received("a", "r1", 1, 400)
    p.pushed(a, 400)
    p.played_all()  # the server was slower than playback
    cut = p.interrupted(0.0, "r1")  # barge-in while waiting for more audio
    assert cut is not None and cut.audio_end_ms == 400


def test_heard_prefix() -> None:
    assert heard_prefix("one two three four", 0.5) == "one two"
    assert heard_prefix("one two three four", 0.0) == ""
    assert heard_prefix("one two", 1.5) == "one two"


def test_responses_never_race_an_active_one() -> None:
    r = Responses()
    assert r.want()
    r.sent("e1")
    assert not r.want()  # a create is on its way: queue
    r.created("resp_1")
    assert r.state == "active" and r.pending
    assert r.done("resp_1") is not None
    assert r.take_pending() and not r.take_pending()  # once

    # A server-VAD response starts while ours is requested: ours is refused as busy.
    r.sent("e2")
    r.created("resp_vad")
    r.create_failed(busy=True)
    assert r.state == "active" and r.pending
    r.done("resp_vad")
    assert r.take_pending()

    # A failed create (not busy) frees the slot.
    r.sent("e3")
    r.create_failed(busy=False)
    assert r.state == "idle" and not r.pending

    # A barge-in drops a queued user request but keeps one carrying tool results.
    r.sent("e4")
    r.want()
    r.drop_pending()
    assert not r.pending
    r.want(for_tools=True)
    r.drop_pending()
    assert r.pending


def test_history_replays_text_items_in_order() -> None:
    h = History()
    h.seed(
        [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c0", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c0", "content": "42"},
        ]
    )
    h.user("u1")  # transcript not yet known
    h.assistant("a1", "Hello ")
    h.assistant("a1", "there")
    h.user("u1", " What time is it ")  # the transcript arrives late: same place
    h.function_output("orphan", "{}")  # its call was never seen
    h.function_call("c1", "clock", '{"tz": "UTC"}')
    h.function_output("c1", '{"time": "noon"}')
    items = h.items(100)
    assert [i["type"] for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert items[0]["content"] == [{"type": "input_text", "text": "Hi"}]
    assert items[3]["content"] == [{"type": "input_text", "text": "What time is it"}]
    assert items[4] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello there"}],
    }
    assert items[5]["arguments"] == '{"tz": "UTC"}'
    assert len(h.items(2)) == 2 and h.items(0) == []
