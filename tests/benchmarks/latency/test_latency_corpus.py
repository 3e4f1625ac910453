"""The corpus: manifest validation names the line and the field; folders load; WER."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.latency.corpus import CorpusError, load_corpus, parse_manifest
from framework.audio import sine_wave, write_wav

GOOD = {
    "conversation": "c",
    "turn": 1,
    "kind": "normal",
    "audio": "a.wav",
    "transcript": "Hello there.",
    "speech_start_s": 0.2,
    "speech_end_s": 0.8,
}


def _manifest(*lines: dict[str, object] | str) -> str:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "line 2: not valid JSON"),
        ({**GOOD, "turn": 2, "speech_end_s": None}, "line 2, field 'speech_end_s': required"),
        ({**GOOD, "turn": 2, "speech_end_s": 0.1}, "field 'speech_end_s': must be greater"),
        ({**GOOD, "turn": "two"}, "line 2, field 'turn': Input should be a valid integer"),
        ({**GOOD, "turn": 2, "colour": "red"}, "line 2, field 'colour': Extra inputs"),
        ({**GOOD, "turn": 2, "kind": "shout"}, "line 2, field 'kind': Input should be"),
        ({**GOOD, "turn": 2, "transcript": ""}, "line 2, field 'transcript': required"),
        ({**GOOD, "turn": 1}, "line 2, field 'turn': turn 1 of conversation 'c' already"),
        (
            {"conversation": "c", "turn": 2, "kind": "silence", "transcript": "hi", "audio": "a"},
            "line 2, field 'transcript': a silence item has no transcript",
        ),
        ({**GOOD, "turn": 2, "speech_start_s": -1}, "field 'speech_start_s': Input should be"),
    ],
)
def test_a_bad_manifest_line_names_the_line_and_the_field(
    bad: dict[str, object] | str, expected: str
) -> None:
    with pytest.raises(CorpusError, match=expected.replace("(", r"\(")) as info:
        parse_manifest(_manifest(GOOD, bad), "m.jsonl")
    assert str(info.value).startswith("m.jsonl line 2")


def test_blank_lines_and_comments_keep_line_numbers() -> None:
    text = _manifest("# my corpus", "", GOOD, {**GOOD, "turn": 2, "speech_end_s": 0.1})
    with pytest.raises(CorpusError, match="line 4, field 'speech_end_s'"):
        parse_manifest(text)


def test_an_empty_manifest_is_refused() -> None:
    with pytest.raises(CorpusError, match="no items"):
        parse_manifest("\n# nothing\n")


def _folder(tmp_path: Path, *lines: dict[str, object]) -> Path:
    write_wav(tmp_path / "a.wav", sine_wave(220, 16000, 1.0), 16000)
    write_wav(tmp_path / "b.wav", sine_wave(330, 24000, 0.5), 24000)
    (tmp_path / "manifest.jsonl").write_text(_manifest(*lines) + "\n")
    return tmp_path


def test_a_user_corpus_folder_loads_in_turn_order(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {**GOOD, "turn": 3, "kind": "barge_in", "delay_s": 0.5},
        GOOD,
        {"conversation": "c", "turn": 2, "kind": "silence", "duration_s": 2.0},
        {**GOOD, "conversation": "d", "audio": "b.wav", "speech_end_s": 0.4, "snr_db": 10},
    )
    corpus = load_corpus(folder)
    assert [c.name for c in corpus.conversations] == ["c", "d"]
    c = corpus.conversation("c")
    assert [i.turn for i in c.items] == [1, 2, 3]
    assert [i.kind for i in c.items] == ["normal", "silence", "barge_in"]
    assert c.items[2].trigger == "during_reply"
    assert c.items[1].trigger == "after_reply"
    assert not c.items[1].reply_expected
    assert c.items[1].duration_s == pytest.approx(2.0)
    assert c.turns == 2
    assert [i.turn for i in c.head(1).items] == [1, 2]
    d = corpus.conversation("d")
    assert d.items[0].sample_rate == 24000
    assert len(corpus.digest) == 16
    assert load_corpus(folder).digest == corpus.digest


def test_speech_times_past_the_audio_and_missing_files_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {**GOOD, "speech_end_s": 1.5})
    with pytest.raises(CorpusError, match=r"line 1, field 'speech_end_s': 1.5 s is past the end"):
        load_corpus(folder)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({**GOOD, "audio": "missing.wav"}))
    with pytest.raises(CorpusError, match="line 1, field 'audio': no such file"):
        load_corpus(folder)
    with pytest.raises(CorpusError, match="not a folder"):
        load_corpus(tmp_path / "nowhere")
    (tmp_path / "manifest.jsonl").unlink()
    with pytest.raises(CorpusError, match="no manifest.jsonl"):
        load_corpus(tmp_path)


def test_generator_pieces_bounds_noise_and_word_time_fallback() -> None:
    import numpy as np

    from benchmarks.latency.generate import _word_times, pink_noise, speech_bounds

    audio = np.zeros(1000)
    audio[200:700] = 0.5
    audio[450] = 0.0
    assert speech_bounds(audio) == (200, 700)
    with pytest.raises(ValueError, match="silent"):
        speech_bounds(np.zeros(10))
    noise = pink_noise(16000, seed=1)
    assert float(np.sqrt(np.mean(noise**2))) == pytest.approx(1.0)
    assert np.array_equal(noise, pink_noise(16000, seed=1))
    # without alignments the words share the speech span by character count
    times, method = _word_times("Hi there", [], 22050, 0.3, (0.3, 1.1))
    assert method == "approx"
    assert [t["word"] for t in times] == ["Hi", "there"]
    assert times[0]["start_s"] == pytest.approx(0.3)
    assert times[0]["end_s"] == pytest.approx(0.3 + 0.8 * 2 / 7, abs=1e-4)
    assert times[1]["end_s"] == pytest.approx(1.1, abs=1e-4)
    aligned = [("hai", 0, 2205), ("der", 4410, 11025)]
    times, method = _word_times("Hi there", aligned, 22050, 0.3, (0.3, 0.75))
    assert method == "alignment"
    assert times[1]["start_s"] == pytest.approx(0.5)
    assert times[1]["end_s"] == pytest.approx(0.75)  # clipped to the true speech end


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        ("../../x.wav", "'../../x.wav' leads outside the corpus folder"),
        ("sub/../../x.wav", "'sub/../../x.wav' leads outside the corpus folder"),
        ("/tmp/x.wav", "'/tmp/x.wav' is an absolute path"),
        (" ", "name a WAV file in the corpus folder"),
    ],
)
def test_audio_paths_must_stay_inside_the_corpus_folder(audio: str, expected: str) -> None:
    with pytest.raises(CorpusError, match=f"m.jsonl line 2, field 'audio': {expected}"):
        parse_manifest(_manifest(GOOD, {**GOOD, "turn": 2, "audio": audio}), "m.jsonl")


def test_an_audio_path_through_a_subfolder_that_stays_inside_is_accepted() -> None:
    [line] = parse_manifest(_manifest({**GOOD, "audio": "takes/../a.wav"}))
    assert line.audio == "takes/../a.wav"


def _non_wav_files(folder: Path) -> dict[str, str]:
    import numpy as np
    import soundfile as sf

    sf.write(str(folder / "take.flac"), np.zeros(16000), 16000)
    sf.write(str(folder / "take.ogg"), np.zeros(16000), 16000)
    (folder / "take.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64)
    (folder / "notes.wav").write_text("not audio at all")
    return {
        "take.flac": "'take.flac' is not a WAV file",
        "take.ogg": "'take.ogg' is not a WAV file",
        "take.mp3": "'take.mp3' is not a WAV file",
        "notes.wav": "'notes.wav' is not a WAV file",
    }


@pytest.mark.parametrize("name", ["take.flac", "take.ogg", "take.mp3", "notes.wav"])
def test_a_non_wav_file_names_the_line_and_the_field_and_the_path_once(
    tmp_path: Path, name: str
) -> None:
    expected = _non_wav_files(tmp_path)[name]
    folder = _folder(tmp_path, GOOD, {**GOOD, "turn": 2, "audio": name})
    with pytest.raises(CorpusError) as info:
        load_corpus(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'manifest.jsonl'} line 2, field 'audio': {expected}")
    assert message.count(name) == 1


def test_a_wav_cut_after_its_header_names_the_line_and_the_field(tmp_path: Path) -> None:
    folder = _folder(tmp_path, GOOD, {**GOOD, "turn": 2, "audio": "cut.wav"})
    (folder / "cut.wav").write_bytes((folder / "a.wav").read_bytes()[:44])
    with pytest.raises(CorpusError) as info:
        load_corpus(folder)
    assert str(info.value) == (
        f"{folder / 'manifest.jsonl'} line 2, field 'audio': 'cut.wav': not a readable audio "
        "file: its header promises 1.000 s of audio but the file ends after the header (cut short?)"
    )


def test_parley_bench_refuses_a_bad_corpus_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "corpus"
    folder.mkdir()
    _non_wav_files(folder)
    _folder(folder, GOOD, {**GOOD, "turn": 2, "audio": "take.flac"})
    script = Path(sys.executable).parent / "parley"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.cli"]
    result = subprocess.run(
        [*command, "bench", "cascade-local-fast", "--corpus", str(folder), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"parley bench: {folder / 'manifest.jsonl'} line 2, field 'audio': 'take.flac' is not "
        "a WAV file; convert it to WAV"
    ]


def test_real_speech_kinds_load_with_their_defaults(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {**GOOD, "kind": "hesitation", "pauses": [[0.4, 0.6]]},
        {**GOOD, "turn": 2, "kind": "backchannel", "transcript": "Uh-huh."},
        {**GOOD, "turn": 3, "kind": "short_barge_in", "transcript": "Wait, stop."},
        {**GOOD, "turn": 4, "kind": "one_word", "transcript": "Yes."},
    )
    items = load_corpus(folder).conversation("c").items
    assert items[0].pauses == ((0.4, 0.6),) and items[0].trigger == "after_reply"
    assert items[1].trigger == "during_reply" and not items[1].reply_expected
    assert items[2].trigger == "during_reply" and items[2].reply_expected
    assert items[3].trigger == "after_reply" and items[3].reply_expected
    assert all(item.is_speech for item in items)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({**GOOD, "pauses": [[0.1, 0.5]]}, "field 'pauses': (0.1, 0.5) must lie inside the speech"),
        ({**GOOD, "pauses": [[0.6, 0.5]]}, "field 'pauses': (0.6, 0.5) must lie inside the speech"),
        (
            {**GOOD, "kind": "backchannel", "trigger": "after_reply"},
            "field 'trigger': a backchannel turn plays during_reply",
        ),
    ],
)
def test_bad_pauses_and_triggers_name_the_field(bad: dict[str, object], expected: str) -> None:
    with pytest.raises(CorpusError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_manifest(_manifest(bad), "m.jsonl")


def test_a_scripted_line_needs_one_pause_length_per_pause_mark() -> None:
    from benchmarks.latency.script import CONVERSATIONS, Line

    line = Line("hesitation", "one, | two | three", pauses_ms=(600, 800))
    assert line.segments == ["one,", "two", "three"]
    assert line.spoken == "one, two three"
    with pytest.raises(ValueError, match="2 pause mark"):
        Line("hesitation", "one, | two | three", pauses_ms=(600,))
    kinds = {line.kind for lines in CONVERSATIONS.values() for line in lines}
    assert {"hesitation", "one_word", "backchannel", "short_barge_in"} <= kinds
    for lines in CONVERSATIONS.values():
        for line in lines:
            if line.kind == "hesitation":
                assert 2 <= len(line.pauses_ms) <= 3
                assert all(500 <= ms <= 900 for ms in line.pauses_ms)
