"""Parsing ``--grid`` arguments, their product, and bad input refused before anything runs."""

from __future__ import annotations

import socket

import pytest

from benchmarks.sweep.cli import main
from benchmarks.sweep.grid import Axis, GridError, configurations, parse_axis, parse_grid


def test_an_axis_is_a_key_and_its_values() -> None:
    assert parse_axis("vad.stop_ms=200,300,400") == Axis("vad.stop_ms", ("200", "300", "400"))
    assert parse_axis(" stt.backend = whisper , pocketsphinx ") == Axis(
        "stt.backend", ("whisper", "pocketsphinx")
    )
    assert parse_axis("llm.temperature=0.2") == Axis("llm.temperature", ("0.2",))


def test_commas_inside_brackets_and_quotes_do_not_split() -> None:
    axis = parse_axis('llm.stop=["a", "b"],[],"x,y"')
    assert axis.values == ('["a", "b"]', "[]", '"x,y"')
    assert parse_axis("t.x={a = 1, b = 2},{}").values == ("{a = 1, b = 2}", "{}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vad.stop_ms", "expected KEY=VALUE1,VALUE2"),
        ("=1,2", "expected KEY=VALUE1,VALUE2"),
        ("stop_ms=1,2", "dotted setting"),
        ("vad..stop_ms=1", "dotted setting"),
        ("vad.stop_ms=200,,300", "empty value"),
        ("vad.stop_ms=", "empty value"),
        ("vad.stop_ms=200,200", "'200' is listed twice"),
        ("llm.stop=[1,2", "unbalanced bracket"),
        ('llm.stop="a,b', "unbalanced quote"),
    ],
)
def test_a_malformed_axis_is_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(GridError, match="--grid") as caught:
        parse_axis(text)
    assert message in str(caught.value)


def test_a_key_given_twice_is_an_error() -> None:
    with pytest.raises(GridError, match=r"vad\.stop_ms: given twice"):
        parse_grid(["vad.stop_ms=200", "stt.backend=whisper", "vad.stop_ms=300"])


def test_configurations_are_the_cartesian_product_in_axis_order() -> None:
    axes = parse_grid(["vad.stop_ms=200,300,400", "stt.backend=whisper,pocketsphinx"])
    grid = configurations(axes)
    assert len(grid) == 6
    assert len(set(grid)) == 6
    assert grid[0].overrides == ["vad.stop_ms=200", "stt.backend=whisper"]
    assert grid[1].overrides == ["vad.stop_ms=200", "stt.backend=pocketsphinx"]
    assert grid[-1].label == "vad.stop_ms=400 stt.backend=pocketsphinx"
    assert {c.settings[0][1] for c in grid} == {"200", "300", "400"}


def test_no_axis_is_one_configuration_as_the_file_says() -> None:
    (only,) = configurations([])
    assert only.overrides == []
    assert only.label == "as configured"


def test_the_command_rejects_a_bad_grid_before_running_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["cascade-local-fast", "--grid", "vad.stop_ms"])
    assert caught.value.code == 2
    assert "expected KEY=VALUE1,VALUE2" in capsys.readouterr().err


def test_a_grid_value_the_pipeline_rejects_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cascade-local-fast", "--grid", "stt.backend=whisper,nosuch"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cascade-local-fast.toml" in err
    assert "nosuch" in err


def test_settings_a_pipeline_lacks_do_not_multiply_its_cells() -> None:
    from benchmarks.sweep.cli import resolve_pipeline, variants

    grid = configurations(parse_grid(["stt.backend=whisper,pocketsphinx"]))
    found = variants(
        [resolve_pipeline(n) for n in ("cascade-local-fast", "realtime-local")], grid, []
    )
    labels = [(v.name, v.label) for v in found]
    assert labels == [
        ("cascade-local-fast", "stt.backend=whisper"),
        ("realtime-local", "as configured"),
        ("cascade-local-fast", "stt.backend=pocketsphinx"),
    ]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:{port}", "no Ray cluster answers there"),
        ("somewhere", "expected auto, local or HOST:PORT"),
    ],
)
def test_a_ray_address_that_cannot_work_fails_at_once(
    address: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["cascade-local-fast", "--ray", address.format(port=port)])
    assert code == 2
    assert message in capsys.readouterr().err
